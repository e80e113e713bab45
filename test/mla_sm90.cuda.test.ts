import { cuda } from '../lib';
import { kernelCases } from './helpers/mla';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

describeCuda('CUDA MLA: the default dispatch (on Hopper: the sm_90a wgmma kernel) matches float64', () => kernelCases('auto'));

import { cuda } from '../lib';
import { kernelCases } from './helpers/mla';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

describeCuda('CUDA MLA: the mma.sync decode kernel (forceMma) matches float64', () => kernelCases('mma'));

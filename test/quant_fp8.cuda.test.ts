import { quantModeSuite } from './helpers/quant_cuda';

quantModeSuite('fp8');

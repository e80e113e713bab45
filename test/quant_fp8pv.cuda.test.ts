import { quantModeSuite } from './helpers/quant_cuda';

quantModeSuite('int8-fp8');

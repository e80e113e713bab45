#!/usr/bin/env node
/** `attn-cuda info | bench`: what is installed, and how fast it runs here. */
import { benchAttention, defaultGrid, formatTable } from './bench';
import { checkDevice, defaultDevice, Device } from './device';
import { info } from './info';

const USAGE = `usage: attn-cuda <command> [options]

commands:
  info                 build, devices and kernels available here
  bench                attention throughput on the best device present

options:
  --json               machine-readable output
  --device <d>         bench on 'cpu' or 'cuda:N' (default: ${'cuda:0 when available, else cpu'})
  --quick              a smaller grid
  -h, --help           this text`;

function parseArgs(argv: string[]): { command: string | undefined; json: boolean; quick: boolean; device?: string } {
  const out: { command: string | undefined; json: boolean; quick: boolean; device?: string } = { command: undefined, json: false, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') out.json = true;
    else if (a === '--quick') out.quick = true;
    else if (a === '--device') out.device = argv[++i];
    else if (a === '-h' || a === '--help') out.command = 'help';
    else if (!a.startsWith('-') && out.command === undefined) out.command = a;
    else throw new RangeError(`unknown argument '${a}'`);
  }
  return out;
}

function printInfo(json: boolean): void {
  const i = info();
  if (json) {
    console.log(JSON.stringify(i, null, 2));
    return;
  }
  console.log(`attn-cuda ${i.version}`);
  console.log(`  CUDA kernels built: ${i.builtWithCuda ? 'yes' : 'no'}`);
  console.log(`  CUDA available:     ${i.cudaAvailable ? 'yes' : `no (${i.cudaReason})`}`);
  console.log(`  CPU threads:        ${i.cpuThreads}`);
  for (const d of i.devices)
    console.log(`  cuda:${d.index}: ${d.name}, sm_${d.sm}, ${d.multiprocessors} SMs, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB`);
  console.log(`  default device:     ${i.defaultDevice}`);
  for (const [dev, fams] of Object.entries(i.kernels)) {
    console.log(`  kernels on ${dev}:`);
    for (const f of fams)
      console.log(`    ${f.op.padEnd(15)} ${f.dtypes.join('/').padEnd(14)} head dims ${f.headDims === 'any' ? 'any' : f.headDims.join('/')}: ${f.description}`);
  }
}

async function bench(json: boolean, quick: boolean, deviceArg?: string): Promise<void> {
  const device: Device = deviceArg === undefined ? defaultDevice() : checkDevice(deviceArg, '--device');
  const grid = defaultGrid(device, quick);
  const tty = process.stderr.isTTY;
  const results = await benchAttention(grid, {
    device,
    onProgress: (i, n, c) => {
      const msg = `[${i + 1}/${n}] ${device} ${c.dtype} d${c.headDim} seq ${c.seqLen}${c.causal ? ' causal' : ''}`;
      if (tty) process.stderr.write(`\r${msg.padEnd(60)}`);
      else if (!json) process.stderr.write(`${msg}\n`);
    },
  });
  if (tty) process.stderr.write(`\r${' '.repeat(60)}\r`);
  if (json) console.log(JSON.stringify(results, null, 2));
  else console.log(formatTable(results));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  switch (args.command) {
    case 'info':
      printInfo(args.json);
      return;
    case 'bench':
      await bench(args.json, args.quick, args.device);
      return;
    case 'help':
      console.log(USAGE);
      return;
    default:
      console.error(args.command === undefined ? USAGE : `unknown command '${args.command}'\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main().catch((err: unknown) => {
  console.error(`attn-cuda: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});

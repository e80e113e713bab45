import { quantKvCases, runKvCase } from './helpers/quant_kv';
test('stats', async () => {
  const lines: string[] = [];
  for (const d of [64, 256]) {
    for (const [name, c] of quantKvCases('cpu', [d])) {
      if (!name.includes('heavy') || !name.includes('fp8') || name.includes('softcap')) continue;
      let worstCos = 1, worstRel = 0;
      for (let i = 0; i < 6; i++) {
        const r = await runKvCase(c);
        worstCos = Math.min(worstCos, r.cos); worstRel = Math.max(worstRel, r.rel);
      }
      lines.push(`${name}: worst cos ${worstCos.toFixed(5)} rel ${worstRel.toFixed(4)}`);
    }
  }
  console.log(lines.join('\n'));
}, 600000);

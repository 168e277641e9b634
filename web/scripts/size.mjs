// Prints the gzipped size of every file of a built dashboard and fails when all of them
// together exceed the budget (issue 8: under 150 KB gzipped in all).
//   node scripts/size.mjs dist [budget-bytes]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? 'dist';
const budget = Number(process.argv[3] ?? 150 * 1024);

function* files(d) {
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else yield p;
  }
}

let total = 0;
for (const f of [...files(dir)].sort()) {
  const gz = gzipSync(readFileSync(f), { level: 9 }).length;
  total += gz;
  console.log(`${String(gz).padStart(8)}  ${relative(dir, f)}`);
}
console.log(`${String(total).padStart(8)}  total gzipped (budget ${budget})`);
if (total > budget) {
  console.error(`size: ${total} bytes gzipped is over the budget of ${budget}`);
  process.exit(1);
}

// Rules for the code itself, checked on every build: workflow code fails only
// with ApplicationFailure (a plain Error is a workflow-task failure Temporal
// retries forever), and workflows and activities share types through
// common/ without import cycles.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
}

/** Plain `throw new Error` outside update validators (functions named validate*), with line numbers. */
function plainThrows(source: string): number[] {
  const lines = source.split('\n');
  const found: number[] = [];
  let inValidator = false;
  let depth = 0;
  let validatorDepth = 0;
  lines.forEach((line, i) => {
    if (/\bvalidate\w*\s*(\(|=)/.test(line) && /[{(]\s*$|=>\s*\{?\s*$|\{\s*$/.test(line) && !inValidator) {
      inValidator = true;
      validatorDepth = depth;
    }
    if (/throw new Error\(/.test(line) && !inValidator) found.push(i + 1);
    depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    if (inValidator && depth <= validatorDepth) inValidator = false;
  });
  return found;
}

function relativeImports(file: string): string[] {
  const src = readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/^\s*(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
    out.push(path.normalize(path.join(path.dirname(file), m[1]!.replace(/\.js$/, '.ts'))));
  }
  return out;
}

describe('workflow code', () => {
  it('throws ApplicationFailure only (update validators aside)', () => {
    const offenders = tsFiles('workflows').flatMap((f) => plainThrows(readFileSync(path.join(ROOT, f), 'utf8')).map((line) => `${f}:${line}`));
    expect(offenders).toEqual([]);
  });

  it('the check finds a plain throw, and lets a validator throw', () => {
    expect(plainThrows('function pass() {\n  if (x) throw new Error("no");\n}\n')).toEqual([2]);
    expect(plainThrows('function validateForce(req) {\n  if (!req) throw new Error("no");\n}\nfunction f() {\n  throw new Error("yes");\n}\n')).toEqual([5]);
  });
});

describe('module boundaries', () => {
  const files = [...tsFiles('workflows'), ...tsFiles('activities'), ...tsFiles('common')];

  it('activities never import workflow code; both share common/', () => {
    const offenders = tsFiles('activities').flatMap((f) => relativeImports(f).filter((i) => i.startsWith('workflows/')).map((i) => `${f} → ${i}`));
    expect(offenders).toEqual([]);
  });

  it('has no import cycle among workflows/, activities/ and common/', () => {
    const graph = new Map(files.map((f) => [f, relativeImports(f).filter((i) => files.includes(i))]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (f: string, trail: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(f)), f].join(' → '));
        return;
      }
      state.set(f, 'open');
      for (const next of graph.get(f) ?? []) visit(next, [...trail, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});

// Importing a policy module in-process (a trusted caller's choice: loadPolicy with isolate false, or a
// built-in's worker). A user's module in an isolated policy is never imported this way: it is bundled and
// runs in its own sandboxed process (sandbox.ts).
import { tsImport } from 'tsx/esm/api';
import { firstLine } from './errors.ts';
import { PolicyShapeError } from './module-shape.ts';

/**
 * Imports a policy module (TypeScript or JavaScript) by file URL, wherever it lives. tsx's tsImport is used
 * rather than import(): a .ts file outside a "type": "module" package is CommonJS to Node, which plain ESM
 * hooks cannot load (Node reports a require(esm) cycle). Such a module arrives wrapped once more — its
 * namespace is the `default` of ours, marked __esModule — and is unwrapped here.
 */
export async function importPolicyModule(url: string): Promise<Record<string, unknown>> {
  let namespace: Record<string, unknown>;
  try {
    namespace = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
  } catch (err) {
    throw new PolicyShapeError(`the module failed to import: ${firstLine(err)}`);
  }
  const inner = namespace.default as { __esModule?: unknown } | null | undefined;
  if (inner !== null && typeof inner === 'object' && inner.__esModule === true) return inner as Record<string, unknown>;
  return namespace;
}

// Prints what switchboard.d.ts declares and what switchboard.js exports, as JSON, for
// tests/clients/test_js_types.py to compare: values exported, the Client's public members, the
// tunable options. Read with TypeScript's own parser.
import { readFileSync } from "node:fs";
import ts from "typescript";

import * as module from "switchboard-client";

const path = new URL("../../../clients/js/switchboard.d.ts", import.meta.url);
const source = ts.createSourceFile("switchboard.d.ts", readFileSync(path, "utf8"), ts.ScriptTarget.ES2022, true);
const exported = (node) => (ts.getModifiers(node) || []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
const named = (members) => [...new Set(members.filter((m) => m.name).map((m) => m.name.getText(source)))].sort();

const declared = { values: [], client: [], tunables: [] };
for (const statement of source.statements) {
  if (!exported(statement)) continue;
  if (ts.isClassDeclaration(statement) || ts.isFunctionDeclaration(statement)) declared.values.push(statement.name.text);
  if (ts.isVariableStatement(statement)) {
    for (const declaration of statement.declarationList.declarations) declared.values.push(declaration.name.getText(source));
  }
  if (ts.isClassDeclaration(statement) && statement.name.text === "Client") {
    declared.client = named(statement.members.filter((m) => !ts.isConstructorDeclaration(m)));
  }
  if (ts.isInterfaceDeclaration(statement) && statement.name.text === "Tunables") declared.tunables = named(statement.members);
}
declared.values.sort();

const client = new module.Client("ws://127.0.0.1:1/dev", { WebSocket: function Unused() {} });
const prototype = Object.getOwnPropertyNames(module.Client.prototype).filter((name) => name !== "constructor");
const runtime = {
  values: Object.keys(module).sort(),
  client: [...new Set([...prototype, ...Object.keys(client)])].filter((name) => !name.startsWith("_")).sort(),
  tunables: Object.keys(module.DEFAULTS).sort(),
};
console.log(JSON.stringify({ declared, runtime }));

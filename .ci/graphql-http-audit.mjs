// The GraphQL-over-HTTP conformance audit (graphql-http's auditServer: every MUST and SHOULD).
// .ci/run installs graphql-http with npm and runs this against the debug binary. By hand:
//   cargo run &                                     # serves http://127.0.0.1:8000/graphql
//   npm install graphql-http graphql && ROSTER_URL=http://127.0.0.1:8000/graphql node .ci/graphql-http-audit.mjs
// Last result (2026-11-24): {"ok":61} — no failures, no warnings.
import { auditServer } from 'graphql-http';
const results = await auditServer({ url: process.env.ROSTER_URL || 'http://127.0.0.1:8000/graphql' });
let counts = {};
for (const r of results) {
  counts[r.status] = (counts[r.status] || 0) + 1;
  if (r.status !== 'ok') console.log(r.status.toUpperCase(), r.name, '-', r.reason);
}
console.log(JSON.stringify(counts));
if (counts.error || counts.warn) process.exit(1);

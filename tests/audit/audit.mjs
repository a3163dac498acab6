// GraphQL-over-HTTP conformance audit of a running server (graphql-http's auditServer).
//
//   node tests/audit/audit.mjs http://127.0.0.1:8000/graphql [--waive ID=reason ...]
//
// Prints one JSON line per audit that is not `ok` ({id, name, status, reason, httpStatus,
// contentType, body}), then a summary line on stderr. Exit status: 0 when no audit is a
// `warn` (a failed SHOULD), `error` (a failed MUST) or `notice-5xx`; 1 otherwise; 2 on a fatal problem
// (bad arguments, server unreachable). `notice` results (failed MAYs) are printed but never
// fail the run. `--waive ID=reason` turns a warn/error of audit ID into status `waived` (the
// reason is printed with it); a waived audit that passes is reported as `waiver-unused`.
// A `notice` whose response was a 5xx fails the run too (status `notice-5xx`): a failed MAY is
// a choice, a server error never is.

import { auditServer } from 'graphql-http';

function usage(message) {
  process.stderr.write(`${message}\nusage: node audit.mjs <graphql url> [--waive ID=reason ...]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let url;
const waivers = new Map();
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--waive') {
    const spec = args[++i] ?? usage('--waive needs ID=reason');
    const [id, ...reason] = spec.split('=');
    waivers.set(id, reason.join('=') || 'waived');
  } else if (url === undefined) {
    url = args[i];
  } else {
    usage(`unexpected argument: ${args[i]}`);
  }
}
if (!url) usage('missing the server URL');
try {
  new URL(url);
} catch {
  usage(`not a URL: ${url}`);
}

async function bodySnippet(response) {
  if (!response) return null;
  try {
    const text = await response.clone().text();
    return text.length > 300 ? `${text.slice(0, 300)}...` : text;
  } catch {
    return null; // the audit already read the body
  }
}

let results;
try {
  results = await auditServer({ url });
} catch (error) {
  process.stderr.write(`audit could not run against ${url}: ${error?.stack ?? error}\n`);
  process.exit(2);
}

const counts = { ok: 0, notice: 0, 'notice-5xx': 0, warn: 0, error: 0, waived: 0 };
let failed = 0;
for (const result of results) {
  const waiver = waivers.get(result.id);
  if (result.status === 'ok') {
    counts.ok++;
    if (waiver !== undefined) {
      console.log(JSON.stringify({ id: result.id, name: result.name, status: 'waiver-unused' }));
    }
    continue;
  }
  let status = result.status;
  if (status === 'notice' && (result.response?.status ?? 0) >= 500) {
    status = 'notice-5xx';
  }
  if (status !== 'notice' && waiver !== undefined) {
    status = 'waived';
  } else if (status !== 'notice') {
    failed++;
  }
  counts[status] = (counts[status] ?? 0) + 1;
  const response = result.response;
  console.log(
    JSON.stringify({
      id: result.id,
      name: result.name,
      status,
      reason: result.reason,
      ...(status === 'waived' ? { waiver } : {}),
      httpStatus: response?.status ?? null,
      contentType: response?.headers?.get('content-type') ?? null,
      body: await bodySnippet(response),
    }),
  );
}
process.stderr.write(
  `graphql-http audit of ${url}: ${results.length} audits, ` +
    `${Object.entries(counts)
      .map(([status, n]) => `${n} ${status}`)
      .join(', ')}\n`,
);
process.exit(failed > 0 ? 1 : 0);

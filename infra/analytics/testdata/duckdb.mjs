// Runs Athena SQL files over a local archive with DuckDB and prints their results as JSON:
//
//   node duckdb.mjs <.devtools dir> <archive dir> <file.sql>...
//
// The queries name the stack's Glue table, events (in the stage's database, Athena's query
// context); here that name is a view over the archive's Parquet files with the table's
// types (partition keys app and day as strings from the path, timestamps without time zone as
// Athena reads them), so the files run unchanged. Output: one
// JSON object mapping each file's base name to its rows (BIGINTs as numbers, dates as
// YYYY-MM-DD, timestamps as text).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const [toolsDir, archiveDir, ...files] = process.argv.slice(2);
const require = createRequire(join(toolsDir, 'package.json'));
const { DuckDBInstance } = require('@duckdb/node-api');

const db = await DuckDBInstance.create(':memory:');
const conn = await db.connect();
await conn.run("SET TimeZone = 'UTC'");
const glob = join(archiveDir, 'app=*', 'day=*', '*.parquet').replaceAll("'", "''");
await conn.run(`CREATE VIEW events AS
  SELECT * REPLACE (CAST(event_time AS TIMESTAMP) AS event_time, CAST(received_at AS TIMESTAMP) AS received_at)
  FROM read_parquet('${glob}', hive_partitioning = true, hive_types = {'app': VARCHAR, 'day': VARCHAR})`);

const out = {};
for (const file of files) {
  const reader = await conn.runAndReadAll(readFileSync(file, 'utf8'));
  out[basename(file, '.sql')] = reader.getRowObjects().map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, plain(v)])));
}
process.stdout.write(JSON.stringify(out));

// plain turns a DuckDB value into JSON: BIGINT (counts) to a number, dates and timestamps to
// their text (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS), null, booleans, numbers and strings as they are.
function plain(v) {
  if (typeof v === 'bigint') return Number(v);
  if (v !== null && typeof v === 'object') return v.toString();
  return v;
}

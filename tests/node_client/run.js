// Drives jambonz's official Node client against a running service; prints one JSON result.
// Usage: BASE_URL=... ACCOUNT_SID=... API_KEY=... HOOK_BASE=... node run.js
'use strict';
const jambonz = require('@jambonz/node-client');

const {BASE_URL, ACCOUNT_SID, API_KEY, HOOK_BASE} = process.env;
const client = jambonz(ACCOUNT_SID, API_KEY, {baseUrl: BASE_URL});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const result = {};
  const sid = await client.calls.create({
    from: '+15550000000',
    to: {type: 'phone', number: '+15550000487'},
    call_hook: {url: `${HOOK_BASE}/answer`, method: 'POST'},
    call_status_hook: `${HOOK_BASE}/events`,
    tag: {client: 'node'}
  });
  result.created = sid;
  result.retrieved = await client.calls.retrieve(sid);
  result.listed = (await client.calls.list()).map((call) => call.call_sid);
  for (let i = 0; i < 100 && (await client.calls.retrieve(sid)).status !== 'ringing'; i++) {
    await sleep(50);
  }
  await client.calls.update(sid, {call_status: 'completed'});
  result.afterUpdate = (await client.calls.retrieve(sid)).status;
  await client.calls.delete(sid);
  try {
    await client.calls.retrieve(sid);
    result.afterDelete = 'still there';
  } catch (err) {
    result.afterDelete = err.message;
  }
  return result;
}

main()
  .then((result) => console.log(JSON.stringify(result)))
  .catch((err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  });

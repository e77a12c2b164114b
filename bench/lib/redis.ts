import { createClient } from '@redis/client';

/** Deletes every key of the namespace (SCAN + DEL); resolves to how many. */
export async function deleteNamespace(url: string, ns: string): Promise<number> {
  const client = createClient({ url });
  client.on('error', () => {
    // reported by connect()
  });
  await client.connect();
  let deleted = 0;
  try {
    let batches = 0;
    for await (const keys of client.scanIterator({ MATCH: `${ns}:*`, COUNT: 1000 })) {
      if (keys.length > 0) deleted += await client.del(keys);
      if (++batches > 100_000) break;
    }
  } finally {
    client.destroy();
  }
  return deleted;
}

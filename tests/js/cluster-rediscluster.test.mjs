// Every test of cluster.test.mjs again, with the two nodes on a Redis Cluster of three primaries
// (real redis-server processes joined by `redis-cli --cluster create`): keys hash-tagged per
// channel, channel events on sharded pub/sub.
process.env.CHORUS_CLUSTER_MODE = 'rediscluster';
await import('./cluster.test.mjs');

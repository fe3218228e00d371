// Every test of cluster.test.mjs again, with the two nodes finding the Redis primary through a
// Sentinel (a primary, a replica and one Sentinel, all real redis-server processes).
process.env.CHORUS_CLUSTER_MODE = 'sentinel';
await import('./cluster.test.mjs');

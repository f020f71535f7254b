import { Partitioners, type PartitionMetadata } from 'kafkajs';

const keyPartitioner = Partitioners.DefaultPartitioner();

/**
 * The partition Kafka's default (murmur2) partitioner gives `key` among `partitions`:
 * the same partition every Kafka client computes, so each user's purchases stay on one.
 */
export const partitionForKey = (key: string, partitions: number): number =>
  keyPartitioner({
    topic: '',
    partitionMetadata: metadataOf(partitions),
    message: { key, value: null },
  });

// The partitioner reads only the partition list; one list per partition count is reused.
const metadata = new Map<number, PartitionMetadata[]>();
const metadataOf = (partitions: number): PartitionMetadata[] => {
  let list = metadata.get(partitions);
  if (list === undefined) {
    list = Array.from({ length: partitions }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
      offlineReplicas: [],
    }));
    metadata.set(partitions, list);
  }
  return list;
};

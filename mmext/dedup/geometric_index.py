# Copyright (c) mmext contributors. All rights reserved.
"""Descriptor voting for the geometric stage's candidate pairs.

A bit-sampling LSH over 256-bit ORB descriptors in numpy: each of
``tables`` tables keys a descriptor by ``key_bits`` fixed random bits; two
descriptors that share a key in any table and lie within
``max_distance`` bits vote for their pair of images. What OpenCV's FLANN
LSH lacks here: buckets holding more than ``max_bucket`` held-out
descriptors are left out, like stop words in text retrieval. Smooth or
upscaled images give thousands of near-identical descriptors (the same
bucket in every table), which made FLANN spend 150 µs a query on them
(the 408 x 204 ``make demo`` flowers: 56 s for the candidates; here
< 2 s) while saying nothing about which image is which.

A descriptor pair at Hamming distance ``d`` shares a key in one table with
probability ``(1 - d / 256) ** key_bits``: 20 bits and 8 tables find 83 %
of the pairs at d = 20 and 51 % at d = 30; a copy has hundreds of such
pairs, a distinct image a few.
"""
import numpy as np

__all__ = ['DescriptorIndex']


def _keys(desc, positions):
    """``(N, T)`` uint32 keys: the bits at ``positions`` (T, B)."""
    bits = np.unpackbits(desc, axis=1)  # N x 256
    weights = (1 << np.arange(positions.shape[1], dtype=np.uint32))
    return np.stack(
        [bits[:, p].astype(np.uint32) @ weights for p in positions], 1)


class DescriptorIndex:
    """Held-out descriptors, bucketed per table.

    Args:
        desc (np.ndarray): ``(N, 32)`` uint8 descriptors.
        owner (np.ndarray): ``(N,)`` image index of each descriptor.
        tables (int): Hash tables. Defaults to 8.
        key_bits (int): Bits per key. Defaults to 20.
        max_bucket (int): Larger buckets are ignored. Defaults to 64.
        seed (int): Seed of the bit positions. Defaults to 0.
    """

    def __init__(self,
                 desc,
                 owner,
                 tables=8,
                 key_bits=20,
                 max_bucket=64,
                 seed=0):
        self.desc = np.ascontiguousarray(desc, np.uint8)
        self.words = self.desc.view(np.uint64).reshape(len(desc), 4)
        self.owner = np.asarray(owner, np.int64)
        self.num_images = int(self.owner.max(initial=-1)) + 1
        rng = np.random.default_rng(seed)
        self.positions = np.stack(
            [rng.choice(256, key_bits, replace=False) for _ in range(tables)])
        keys = _keys(self.desc, self.positions)
        self.tables = []
        for t in range(tables):
            order = np.argsort(keys[:, t], kind='stable')
            uniq, start, count = np.unique(
                keys[order, t], return_index=True, return_counts=True)
            small = count <= max_bucket
            self.tables.append(
                (uniq[small], start[small], count[small], order))

    def vote(self, desc, query_owner, max_distance=50):
        """``(query image, held-out image, votes)`` arrays: votes are
        query descriptors with a near neighbour in that held-out image
        (one vote per descriptor and image)."""
        desc = np.ascontiguousarray(desc, np.uint8)
        words = desc.view(np.uint64).reshape(len(desc), 4)
        keys = _keys(desc, self.positions)
        found = []
        for t, (uniq, start, count, order) in enumerate(self.tables):
            pos = np.searchsorted(uniq, keys[:, t])
            pos = np.minimum(pos, len(uniq) - 1) if len(uniq) else pos
            hit = (
                np.flatnonzero(uniq[pos] == keys[:, t])
                if len(uniq) else np.zeros(0, np.int64))
            n = count[pos[hit]]
            q = np.repeat(hit, n)
            # positions inside each hit bucket: 0..n-1
            within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
            h = order[np.repeat(start[pos[hit]], n) + within]
            dist = np.bitwise_count(words[q] ^ self.words[h]).sum(1)
            near = dist <= max_distance
            found.append(q[near] * self.num_images + self.owner[h[near]])
        if not found or not sum(map(len, found)):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        # one vote per (descriptor, held-out image), then per image pair
        keys = np.unique(np.concatenate(found))
        span = self.num_images
        pair, votes = np.unique(
            np.asarray(query_owner)[keys // span] * span + keys % span,
            return_counts=True)
        return pair // span, pair % span, votes

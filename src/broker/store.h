/* The broker's persistent store: an append-only journal under a data
 * directory, written by one writer thread with group commit, replayed at
 * start, compacted in the background.
 *
 * Model.  A message (an id and its encoded bytes) is written once; it is
 * on one or more queues (enqueue records); an ack record takes it off one
 * queue; a message on no queue is dead and its bytes are reclaimed by
 * compaction.  Queues are declared by records too (id, name, a small
 * property blob the broker interprets), and deleted by records.
 *
 * Durability.  Appends from any thread are queued in memory; the writer
 * thread takes everything queued, writes it with one writev() and makes it
 * durable with one fdatasync() (group commit: many producers share one
 * sync), then calls every completion of that batch, in append order, on
 * the writer thread.  A completion means the record survives a crash
 * (kill -9, power loss on a disk that honours fdatasync).  With
 * opts.fsync false the sync is skipped (tests, benchmarks).
 *
 * Files.  DIR/journal-NNNNNNNN.log segments of about opts.segment_size
 * bytes; every record is framed with its length and a CRC32C, so a torn
 * write at the tail is detected and cut off at recovery.  DIR/LOCK is
 * held with flock() while the store is open: a second broker on the same
 * directory fails with a clear error.
 *
 * Compaction.  Each segment counts the live records it holds.  A segment
 * with none left (and not the one being written) is deleted; a segment
 * whose live bytes fall below opts.compact_ratio of its size has its live
 * records copied to the head and is then deleted, so the journal stays
 * within a small multiple of the live data.
 *
 * Threads.  Every function is thread-safe except open/close.  Ids are
 * chosen by the caller (the broker) and never reused: message ids grow
 * monotonically (recovery reports the highest seen), queue ids too. */
#ifndef LEPTON_BROKER_STORE_H
#define LEPTON_BROKER_STORE_H

#include <lepton/common.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lepi_store lepi_store_t;

typedef struct lepi_store_opts {
    const char *dir;        /* created (0700) if missing */
    size_t segment_size;    /* 0: 64 MiB */
    bool fsync;             /* default true */
    double compact_ratio;   /* 0: 0.5 */
    /* Upper bound on one batch (bytes); a larger backlog is written in
     * several.  0: 8 MiB. */
    size_t max_batch;
} lepi_store_opts_t;

void lepi_store_opts_init(lepi_store_opts_t *o);

/* Recovery callbacks, called inside lepi_store_open in this order: every
 * live queue (in creation order), then every live enqueue (message on a
 * queue, in enqueue order across all queues).  data is a view valid for
 * the call.  A non-zero return aborts the open with that value. */
typedef struct lepi_store_recovery {
    void *ctx;
    int (*queue)(void *ctx, uint64_t queue_id, const char *name, const void *props,
                 size_t props_len);
    int (*message)(void *ctx, uint64_t queue_id, uint64_t msg_id, const void *data,
                   size_t len);
} lepi_store_recovery_t;

/* What recovery found. */
typedef struct lepi_store_info {
    uint64_t max_msg_id, max_queue_id; /* highest ids ever written */
    uint64_t queues, messages, enqueues; /* live after recovery */
    uint64_t truncated_bytes;          /* torn tail cut off */
    size_t segments;
} lepi_store_info_t;

/* Opens (creating if needed) and recovers the store.  r may be NULL.
 * On error err says why (e.g. "DIR: locked by another process",
 * "journal-00000003.log: bad record at 123456: checksum"); a corrupt
 * record in the middle of the journal is an error, a torn record at the
 * very tail is cut off and reported in info. */
int lepi_store_open(lepi_store_t **out, const lepi_store_opts_t *o,
                    const lepi_store_recovery_t *r, lepi_store_info_t *info, char *err,
                    size_t errlen);
/* Writes and syncs what is queued, runs the last completions, stops the
 * writer thread, releases the lock. */
void lepi_store_close(lepi_store_t *s);

/* Completion of an append: status 0 (durable), or a negative LEP_ERR_*
 * (LEP_ERR_IO: the disk failed; the store then refuses further appends).
 * Runs on the writer thread; must not block long (inject work into a
 * connection, count, wake). */
typedef void (*lepi_store_done_fn)(void *ctx, int status);

/* A message with its bytes (copied) on queues[0..nqueues). One
 * completion for all of it.  done may be NULL. */
int lepi_store_enqueue(lepi_store_t *s, uint64_t msg_id, const void *data, size_t len,
                       const uint64_t *queues, size_t nqueues, lepi_store_done_fn done,
                       void *ctx);
/* The message is off the queue.  done may be NULL (acks need not wait). */
int lepi_store_ack(lepi_store_t *s, uint64_t queue_id, uint64_t msg_id, lepi_store_done_fn done,
                   void *ctx);
/* Declares a queue (props: copied bytes the broker interprets: policy). */
int lepi_store_queue_create(lepi_store_t *s, uint64_t queue_id, const char *name,
                            const void *props, size_t props_len, lepi_store_done_fn done,
                            void *ctx);
/* Deletes a queue and, implicitly, every message still on it. */
int lepi_store_queue_delete(lepi_store_t *s, uint64_t queue_id, lepi_store_done_fn done,
                            void *ctx);
/* Waits until everything appended so far is durable. */
int lepi_store_sync(lepi_store_t *s);

typedef struct lepi_store_stats {
    uint64_t appends, batches, syncs;  /* since open */
    uint64_t bytes_written;
    uint64_t disk_bytes;               /* segment files now */
    size_t segments;
    uint64_t live_messages, live_enqueues;
    uint64_t compactions;
} lepi_store_stats_t;
void lepi_store_stats(lepi_store_t *s, lepi_store_stats_t *out);

#endif

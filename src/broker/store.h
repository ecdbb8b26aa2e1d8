/* The broker's persistent store: an append-only journal under a data
 * directory, written by one writer thread with group commit, replayed at
 * start, compacted in the background.
 *
 * Model.  A message (an id and its encoded bytes) is written once; it is
 * on one or more queues (enqueue records); an ack record takes it off one
 * queue; a message on no queue is dead and its bytes are reclaimed by
 * compaction.  Queues are declared by records too (id, name, a small
 * property blob the broker interprets), and deleted by records.  A queue
 * must be created (appended) before messages are enqueued on it: an
 * enqueue on a queue the store does not know is dropped.
 *
 * Durability.  Appends from any thread are queued in memory; the writer
 * thread takes everything queued, writes it with one writev() and makes it
 * durable with one fdatasync() (group commit: many producers share one
 * sync), then calls every completion of that batch, in append order, on
 * the writer thread.  A completion means the record survives a crash
 * (kill -9, power loss on a disk that honours fdatasync).  With
 * opts.fsync false the sync is skipped (tests, benchmarks): a completion
 * then means the record is in the kernel, which survives kill -9 but not
 * power loss.
 *
 * Files.  DIR/journal-NNNNNNNN.log segments of about opts.segment_size
 * bytes (one append is never split, so a bigger one makes a bigger
 * segment); every record is framed with its length and a CRC32C, so a torn
 * write at the tail is detected and cut off at recovery.  DIR/LOCK is
 * held with flock() while the store is open: a second broker on the same
 * directory fails with a clear error.  The format is described in
 * src/broker/journal.h.
 *
 * Compaction.  Each segment counts the live records it holds (an ack or
 * queue-delete record stays live while the record it cancels is still on
 * disk in another segment).  A segment with none left (and not the one
 * being written) is deleted; a segment whose live bytes fall below
 * opts.compact_ratio of its size has its live records copied to the head
 * and is then deleted, so the journal stays within a small multiple of the
 * live data.  The writer does this between batches, opts.compact_step
 * bytes of a segment at a time, so appends wait at most that long.
 *
 * Threads.  Every function is thread-safe except open/close; completions
 * may call the append functions (not lepi_store_sync, not close).  Ids are
 * chosen by the caller (the broker) and never reused, even after the
 * message or queue is gone: message ids grow monotonically (recovery
 * reports the highest seen, including ids whose records were compacted
 * away), queue ids too. */
#ifndef LEPTON_BROKER_STORE_H
#define LEPTON_BROKER_STORE_H

#include <lepton/common.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct lepi_store lepi_store_t;

typedef struct lepi_store_opts {
    const char *dir;        /* created (0700, with its parents) if missing; copied */
    size_t segment_size;    /* 0: 64 MiB; 4 KiB .. 1 GiB */
    bool fsync;             /* default true */
    double compact_ratio;   /* 0: 0.5; below 1 */
    /* Upper bound on one batch (bytes); a larger backlog is written in
     * several, each with its own sync and completions.  0: 8 MiB. */
    size_t max_batch;
    /* Bytes of a segment a compaction step reads before the writer looks
     * for appends again (bounds what compaction adds to their latency).
     * 0: 1 MiB. */
    size_t compact_step;
    /* Test hooks, NULL in production: called instead of writev() on the
     * head segment and fdatasync(), on the writer thread; return -1 with
     * errno set to simulate a full or failing disk. */
    ssize_t (*writev_hook)(int fd, const struct iovec *iov, int iovcnt, void *ctx);
    int (*sync_hook)(int fd, void *ctx);
    void *hook_ctx;
} lepi_store_opts_t;

void lepi_store_opts_init(lepi_store_opts_t *o);

/* Recovery callbacks, called inside lepi_store_open on the calling thread
 * in this order: every live queue (in creation order, that is by queue
 * id), then every live enqueue (message on a queue, in enqueue order
 * across all queues, that is by message id, since the broker's ids grow as
 * it appends; a message on several queues comes once per queue, in queue
 * id order).  name, props and data are views valid for the call.  A
 * non-zero return aborts the open with that value.  Either may be NULL. */
typedef struct lepi_store_recovery {
    void *ctx;
    int (*queue)(void *ctx, uint64_t queue_id, const char *name, const void *props,
                 size_t props_len);
    int (*message)(void *ctx, uint64_t queue_id, uint64_t msg_id, const void *data,
                   size_t len);
} lepi_store_recovery_t;

/* What recovery found. */
typedef struct lepi_store_info {
    uint64_t max_msg_id, max_queue_id; /* highest ids ever written (0: none) */
    uint64_t queues, messages, enqueues; /* live after recovery */
    uint64_t truncated_bytes;          /* torn tail cut off */
    size_t segments;
    size_t compactions_finished;       /* interrupted by a crash, finished by open */
} lepi_store_info_t;

/* Opens (creating if needed) and recovers the store; on success *out is
 * the caller's, to lepi_store_close.  r and info may be NULL; err (errlen
 * bytes, may be NULL) receives a message on error, e.g.
 * "DIR: locked by another process" (LEP_ERR_STATE),
 * "DIR/journal-00000003.log: bad record at 123456: checksum mismatch"
 * (LEP_ERR_DECODE), an OS error (LEP_ERR_IO), LEP_ERR_NOMEM, a bad option
 * (LEP_ERR_INVALID), or the recovery callback's own value.  A corrupt
 * record in the middle of the journal is an error; a bad record at the
 * end of the last segment with nothing valid after it (a torn write) is
 * cut off and reported in info.  A compaction that a crash interrupted is
 * finished here, before the store accepts appends. */
int lepi_store_open(lepi_store_t **out, const lepi_store_opts_t *o,
                    const lepi_store_recovery_t *r, lepi_store_info_t *info, char *err,
                    size_t errlen);
/* Writes and syncs what is queued, runs the last completions, stops the
 * writer thread, releases the lock. */
void lepi_store_close(lepi_store_t *s);

/* Completion of an append: status 0 (durable), or a negative LEP_ERR_*:
 * LEP_ERR_IO: the disk failed; the store then refuses further appends
 * (they return LEP_ERR_IO; lepi_store_status says why);
 * LEP_ERR_INVALID: a message or queue id that is live already (not written);
 * LEP_ERR_NOMEM: the writer could not index it (not written; the store
 * goes on).
 * Runs on the writer thread; must not block long (inject work into a
 * connection, count, wake).
 *
 * Every append function copies what it is given and returns 0 (the
 * completion will run), or an error and the completion will not run:
 * LEP_ERR_INVALID, LEP_ERR_LIMIT (too big), LEP_ERR_NOMEM (nothing
 * appended), LEP_ERR_IO (the store has failed), LEP_ERR_STATE (closed). */
typedef void (*lepi_store_done_fn)(void *ctx, int status);

/* A message with its bytes (copied, at most 2 GiB) on queues[0..nqueues)
 * (1 to 65535 queues; a repeated queue counts once).  The bytes are
 * written once whatever the number of queues.  One completion for all of
 * it.  done may be NULL. */
int lepi_store_enqueue(lepi_store_t *s, uint64_t msg_id, const void *data, size_t len,
                       const uint64_t *queues, size_t nqueues, lepi_store_done_fn done,
                       void *ctx);
/* The message is off the queue.  done may be NULL (acks need not wait).
 * An ack of something not on the queue is written and has no effect. */
int lepi_store_ack(lepi_store_t *s, uint64_t queue_id, uint64_t msg_id, lepi_store_done_fn done,
                   void *ctx);
/* Declares a queue (name: NUL-terminated, at most 65535 bytes; props:
 * copied bytes the broker interprets: policy). */
int lepi_store_queue_create(lepi_store_t *s, uint64_t queue_id, const char *name,
                            const void *props, size_t props_len, lepi_store_done_fn done,
                            void *ctx);
/* Deletes a queue and, implicitly, every message still on it. */
int lepi_store_queue_delete(lepi_store_t *s, uint64_t queue_id, lepi_store_done_fn done,
                            void *ctx);
/* Waits until everything appended so far is durable (its completions have
 * run).  0, or the store's failure (LEP_ERR_IO). */
int lepi_store_sync(lepi_store_t *s);
/* 0 while the store works; after a failure its code, and in err a message
 * such as "DIR: fdatasync: Input/output error". */
int lepi_store_status(lepi_store_t *s, char *err, size_t errlen);

/* Counters as of the writer's last batch (or housekeeping step). */
typedef struct lepi_store_stats {
    uint64_t appends, batches, syncs;  /* since open; syncs counts fdatasync() calls */
    uint64_t bytes_written;            /* records, copies and headers */
    uint64_t disk_bytes;               /* segment files now */
    size_t segments;
    uint64_t live_messages, live_enqueues, live_queues;
    uint64_t compactions;              /* segments compacted since open */
} lepi_store_stats_t;
void lepi_store_stats(lepi_store_t *s, lepi_store_stats_t *out);

#endif

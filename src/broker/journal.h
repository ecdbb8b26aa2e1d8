/* The store's journal: on-disk format, the in-memory index of what is live,
 * and the writer's state.  Private to src/broker/store.c and journal_*.c.
 *
 * Format (all integers little-endian).
 *
 *   segment  := header record*
 *   header   := "LEPJRNL" 0x01 | u32 segment number | u32 0
 *               | u64 max msg id | u64 max queue id (ids written before it)
 *               | u32 crc32c(bytes 0..32) | u32 0                     (40 bytes)
 *   record   := u32 crc | u32 len | u8 type | body[len]
 *               crc = crc32c(len | type | body)
 *   MSG      := u64 msg id | bytes                     the message, once
 *   ENQ      := u64 queue id | u64 msg id
 *   ACK      := u64 queue id | u64 msg id | u32 target
 *   QCREATE  := u64 queue id | u16 n | name[n] | 0 | props
 *   QDELETE  := u64 queue id | u32 target
 *
 * One append is one *unit*: the ENQ records of a message followed by its
 * MSG record, which commits them (ENQs not followed by their MSG, as at a
 * torn tail, have no effect); or one other record.  A unit never spans
 * two segments, so a message's ENQs are always in the segment of its MSG.
 * The segment headers keep the highest ids even when every record that
 * carried them has been compacted away.
 *
 * Replay is set algebra, not a sequence of commands: an enqueue (q, m) is
 * live when some ENQ(q, m) came with a MSG(m), no ACK(q, m) was seen, and
 * q has a QCREATE and no QDELETE.  Ids are never reused, so copies that
 * compaction makes of live records are harmless duplicates; a segment
 * whose records were copied when a crash stopped the compaction is
 * compacted again by recovery before anything can be acked.
 *
 * Tombstones (ACK, QDELETE) are needed while the record they cancel is on
 * disk.  `target` names the segment that held it when the tombstone was
 * written (0: it cancelled nothing); a tombstone in segment k is live while
 * segment target != k exists.  A segment is deleted when nothing in it is
 * live; one whose live bytes fall under compact_ratio is compacted: its
 * live units, queues and tombstones are copied to the head, then it is
 * deleted.  The writer fills in targets (and the tombstone's checksum) as
 * it applies each unit to the index, just before writing it.
 *
 * Durability ordering: copies are synced before their source is unlinked;
 * an unlink is made durable (directory fsync) before any deletion that
 * relies on it; a segment is synced before the next one is created. */
#ifndef LEPTON_BROKER_JOURNAL_H
#define LEPTON_BROKER_JOURNAL_H

#include "broker/store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#define JR_MAGIC "LEPJRNL\x01"
#define JR_HDR 40u          /* segment header */
#define JR_REC 9u           /* record header: crc, len, type */
#define JR_ENQ (JR_REC + 16u)
#define JR_ACK (JR_REC + 20u)
#define JR_QDEL (JR_REC + 12u)
#define JR_MAX_SEGMENT (1u << 30)
#define JR_MAX_BODY ((size_t)1 << 31) /* one record's body */
#define JR_MAX_QUEUES 65535u          /* queues per message */
#define JR_MAX_NAME 65535u

enum { JR_MSG = 1, JR_ENQ_T = 2, JR_ACK_T = 3, JR_QCREATE = 4, JR_QDELETE = 5 };

static inline void
jr_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static inline void
jr_put64(uint8_t *p, uint64_t v)
{
    jr_put32(p, (uint32_t)v);
    jr_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t
jr_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t
jr_get64(const uint8_t *p)
{
    return (uint64_t)jr_get32(p) | (uint64_t)jr_get32(p + 4) << 32;
}

/* Raises *max to id (the highest ids written, kept in the index). */
static inline void
jr_note_max(uint64_t *max, uint64_t id)
{
    if (id > *max)
        *max = id;
}

/* ---- index (owned by the writer thread; by open before it starts) ---- */

/* A table of fixed-size entries keyed by a u64 at offset 0, with a u32 at
 * offset 8 that is non-zero in used slots (a segment number: they start
 * at 1).  Open addressing, linear probing, backward-shift deletion. */
typedef struct jr_table {
    uint8_t *slots;
    size_t cap, count, esize;
} jr_table_t;

void jr_table_init(jr_table_t *t, size_t esize);
void jr_table_fini(jr_table_t *t);
void *jr_table_find(const jr_table_t *t, uint64_t key);
/* Room for n more entries without allocating (grows now if needed). */
int jr_table_reserve(jr_table_t *t, size_t n);
/* A zeroed entry with its key set; reserve first.  The caller sets seg. */
void *jr_table_insert(jr_table_t *t, uint64_t key);
/* Removes e.  Entries after it may move into its slot: a caller walking
 * the slots looks at the same slot again. */
void jr_table_remove(jr_table_t *t, void *e);
static inline void *
jr_table_slot(const jr_table_t *t, size_t i)
{
    return t->slots + i * t->esize;
}
static inline bool
jr_table_used(const void *e)
{
    uint32_t seg;
    memcpy(&seg, (const uint8_t *)e + 8, 4);
    return seg != 0;
}

/* A live message: where its MSG record is, and the queues it is on. */
typedef struct jr_msg {
    uint64_t id;
    uint32_t seg, off, size; /* MSG record: segment, offset, bytes */
    uint16_t nq, cap;        /* cap 0: the one queue is inline */
    union {
        uint64_t one;
        uint64_t *many;
    } q;
} jr_msg_t;

static inline uint64_t *
jr_msg_queues(jr_msg_t *m)
{
    return m->cap ? m->q.many : &m->q.one;
}
/* The queues are kept sorted (a message may be on thousands). */
bool jr_msg_has(jr_msg_t *m, uint64_t q);
/* Room for n queues in all. */
int jr_msg_reserve(jr_msg_t *m, size_t n);
/* After queues were appended at jr_msg_queues(m)[m->nq++]: sorts them and
 * drops duplicates. */
void jr_msg_sort(jr_msg_t *m);
bool jr_msg_remove(jr_msg_t *m, uint64_t q);
void jr_msg_fini(jr_msg_t *m);

typedef struct jr_queue {
    uint64_t id;
    uint32_t seg, off, size; /* QCREATE record */
    uint32_t pad;
    uint64_t count; /* live enqueues */
} jr_queue_t;

/* Tombstones in a segment cancelling records in segment target. */
typedef struct jr_dep {
    uint32_t target;
    uint64_t bytes;
} jr_dep_t;

typedef struct jr_seg {
    uint32_t num;
    bool stale;         /* holds copies superseded by newer ones: compact at open */
    uint64_t size;      /* bytes in the file */
    uint64_t live;      /* bytes still needed, tombstones included */
    jr_dep_t *deps;
    uint32_t ndeps, capdeps;
    uint8_t *map; /* mapped for reading (recovery, compaction) */
    size_t maplen;
} jr_seg_t;

typedef struct jr_index {
    jr_table_t msgs;   /* jr_msg_t */
    jr_table_t queues; /* jr_queue_t */
    jr_seg_t *segs;    /* by number, ascending; the last is the head */
    size_t nsegs, capsegs;
    uint64_t live_enqueues;
    uint64_t max_msg_id, max_queue_id;
} jr_index_t;

void jr_index_init(jr_index_t *x);
void jr_index_fini(jr_index_t *x);
jr_seg_t *jr_seg_find(jr_index_t *x, uint32_t num);
/* Room for one more segment (keeps a spare so that a roll need not allocate). */
int jr_seg_reserve(jr_index_t *x);
jr_seg_t *jr_seg_push(jr_index_t *x, uint32_t num); /* reserve first */
/* Forgets segment num: tombstones elsewhere that targeted it die. */
void jr_seg_remove(jr_index_t *x, uint32_t num);
int jr_dep_reserve(jr_seg_t *s);
void jr_dep_add(jr_index_t *x, jr_seg_t *s, uint32_t target, uint64_t bytes); /* reserve first */
/* Takes bytes of tombstones targeting target off s (a compaction copied them). */
void jr_dep_sub(jr_seg_t *s, uint32_t target, uint64_t bytes);
/* Removes queue q from every message (zero-queue messages die); live
 * counts follow. */
void jr_index_drop_queue(jr_index_t *x, uint64_t q);

/* ---- the store ---- */

/* One append: its bytes are in the pending chunks, contiguous, in order. */
typedef struct jr_unit {
    lepi_store_done_fn done;
    void *ctx;
    size_t len;
    int status;
} jr_unit_t;

typedef struct jr_chunk {
    struct jr_chunk *next;
    size_t len, cap;
    uint8_t data[];
} jr_chunk_t;

typedef struct jr_units {
    jr_unit_t *v;
    size_t n, cap;
} jr_units_t;

#define JR_IOV 64

struct lepi_store {
    lepi_store_opts_t o;
    char *dir;
    int dirfd, lockfd;

    /* Appenders and the writer meet here. */
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* writer: something to do */
    pthread_cond_t synced;  /* lepi_store_sync waiters */
    jr_chunk_t *pend_head, *pend_tail, *free_chunks;
    size_t nfree_chunks;
    jr_units_t pend;
    /* Appends are numbered 1, 2, ... in append order.  done: completions
     * run; durable: synced (or written, with fsync off); want: a
     * lepi_store_sync caller waits for this one to be durable. */
    uint64_t seq_appended, seq_done, seq_durable, seq_want;
    int failed;             /* appends refused with this */
    char errmsg[256];       /* why */
    bool writer_waiting, closing, stopped;
    lepi_store_stats_t stats;

    /* Writer thread only. */
    pthread_t thread;
    bool thread_started;
    jr_index_t x;
    jr_units_t wunits;      /* the backlog being written */
    uint64_t wseq;          /* number of the last unit written */
    uint64_t wwant;         /* seq_want when the backlog was taken */
    int werr;               /* the writer's failure (LEP_ERR_IO), sticky */
    int head_fd;
    uint64_t head_size;     /* bytes in the head file */
    struct iovec iov[JR_IOV];
    int niov;
    uint64_t iov_bytes;     /* not yet written */
    uint64_t syncs, bytes_written, compactions;
    bool dirty;             /* written since the last sync */
    /* compaction in progress */
    struct {
        bool active, paused;
        uint32_t src;
        uint64_t pos;
        uint64_t credit; /* bytes appended since the last step */
        lep_buf_t buf; /* ENQ records made for relocated units */
    } cmp;
};

/* store.c helpers used by the journal files. */
int jr_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int jr_io_fail(lepi_store_t *s, const char *what);

/* journal_recover.c */
int jr_recover(lepi_store_t *s, const lepi_store_recovery_t *r, lepi_store_info_t *info,
               char *err, size_t errlen);
/* Parses the record at p (avail bytes left): 0 and *total, or why not. */
int jr_parse(const uint8_t *p, size_t avail, size_t *total, const char **why);

/* journal_write.c: the head, rolling, writing, compaction. */
void jr_seg_path(const lepi_store_t *s, uint32_t num, char *buf, size_t len);
int jr_head_create(lepi_store_t *s, uint32_t num);
/* Where a unit of len bytes goes (rolls the head when full): its segment. */
int jr_place(lepi_store_t *s, uint64_t len, uint32_t *seg, uint32_t *off);
int jr_emit(lepi_store_t *s, const void *p, size_t len);
int jr_flush(lepi_store_t *s);
int jr_commit(lepi_store_t *s); /* flush and (opts.fsync) fdatasync */
/* Deletes segments with nothing live.  Returns how many. */
size_t jr_delete_dead(lepi_store_t *s);
/* One bounded step of compaction; false when there is nothing to do. */
bool jr_compact_step(lepi_store_t *s);
/* Starts compacting segment num (recovery: one holding stale copies). */
int jr_compact_start(lepi_store_t *s, uint32_t num);
bool jr_compact_pending(lepi_store_t *s);
void jr_compact_fini(lepi_store_t *s);
/* Applies one appended unit to the index and writes its tombstone targets
 * and their checksums; returns 0, LEP_ERR_NOMEM or LEP_ERR_INVALID (the
 * unit is then not written). */
int jr_apply_unit(lepi_store_t *s, uint8_t *p, size_t len, uint32_t seg, uint32_t off);

#endif

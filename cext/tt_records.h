/* Records that cross between Python (numpy structured arrays) and the kernels: their one declaration.
 *
 * The numpy dtypes are timetag/engine/records.py (kernel records), timetag/records.py (herald and round
 * records) and timetag/formats/dump.py (dump records); each Cython module that uses a record reports its
 * layout as the C compiler laid it out (record_layouts()), and tests/engine/test_kernel_records.py checks
 * that the dtypes agree field by field: names, offsets and sizes.  A kernel takes these records as typed
 * memoryviews and reads fields by name. */
#ifndef TIMETAG_TT_RECORDS_H
#define TIMETAG_TT_RECORDS_H
#include <stdint.h>

/* --- herald stage (cext/engine_slots.pyx) ----------------------------------------------------------------- */

/* One lab's herald parameters, from its setup (timetag.engine.params.compile_lab); times in ps. */
typedef struct {
    int64_t sync_next;         /* 1: windows are measured from the first sync at or after the click ('next'),
                                  0: from the latest sync at or before it ('previous') */
    int64_t window_start_ps;   /* acceptance window [start, stop) of click - sync */
    int64_t window_stop_ps;
    int64_t coincidence_ps;    /* longest time between the two clicks of a psi+/psi- herald */
    int64_t arrival_start_ps;  /* arrival histogram of click - sync: [start, stop) in bins of bin_ps */
    int64_t arrival_stop_ps;
    int64_t arrival_bin_ps;
} tt_herald_params;

/* What the herald stage carries from one chunk to the next besides the rows. */
typedef struct {
    int64_t carry;             /* 1: the attempt of the first sync left in the row is still open ('previous') */
    int64_t carry_n;           /* and its accepted clicks and keys (a tt_agg) */
    int64_t carry_k1;
    int64_t carry_k2;
    int64_t clicks_accepted;   /* counters of the whole run */
    int64_t clicks_without_sync;
} tt_herald_state;

/* In and out of a process_chunk call (out: counts since the caller last set them to 0). */
typedef struct {
    int64_t last_raw;          /* in/out: the latest raw time split */
    int64_t horizon;           /* in/out: every tag with corrected time < horizon has been split */
    int64_t attempts;          /* in/out: attempts begun, one per sync from sync_lo on */
    int64_t closed;            /* in/out: attempts closed (scanned for heralds) */
    int64_t heralds;           /* in/out: closed attempts with >= 2 accepted clicks (in the her array) */
    int64_t sync_lo;           /* in: the sync row's first unread tag = attempt 0 */
} tt_herald_io;

/* One attempt: accepted clicks and the keys of the first and last one, key = (dt - window start) * 256 + r
 * as an unsigned number (dt relative to the sync, r the BSM row in ascending channel order), so that one
 * integer comparison orders clicks by (time, channel).  No click yet: k1 = UINT64_MAX, k2 = 0. */
typedef struct { int64_t k1, k2, n, pad; } tt_agg;  /* 32 bytes: an index is one shift */

/* A closed attempt with >= 2 accepted clicks (a herald to be), with its sync's raw time. */
typedef struct { int64_t k1, k2, n, sync; } tt_her;

/* A herald (timetag.records.HERALD_DTYPE: unaligned, so packed). */
typedef struct __attribute__((packed)) {
    int64_t time;
    int64_t sync_time;
    int8_t pattern;
    int32_t det1;
    int32_t det2;
    int64_t dt1;
    int64_t dt2;
    int32_t nclicks;
} tt_herald_record;

/* --- round stage (cext/engine_rounds.pyx) ----------------------------------------------------------------- */

/* How one lab makes triggers (setup keys round.* and the herald's acceptance window); times in ps. */
typedef struct {
    int64_t mode;              /* TT_TRIGGER_HERALD / _READY / _BOTH */
    int64_t ready_delay_ps;
    int64_t ready_tolerance_ps;
    int64_t window_start_ps;   /* the herald's acceptance window, relative to its sync */
    int64_t window_stop_ps;
} tt_trigger_params;

/* How one lab evaluates a round, relative to its trigger; times in ps. */
typedef struct {
    int64_t setting_start_ps;  /* setting window [start, stop) */
    int64_t setting_stop_ps;
    int64_t fluorescence_start_ps;  /* fluorescence window [start, stop) */
    int64_t fluorescence_stop_ps;
    int64_t threshold;         /* output 1 when the fluorescence count >= threshold */
} tt_round_params;

/* A trigger waiting for its round (times absolute, corrected). */
typedef struct {
    int64_t time;              /* the round's trigger time */
    int64_t herald_time;       /* its herald's time, -1 without one */
    int64_t pattern;           /* its herald's pattern, TT_PATTERN_NONE without one */
    int64_t flags;             /* TT_FLAG_* known when the trigger is made */
    int64_t herald_window_start;  /* its herald's acceptance window [start, stop) (empty without a herald): */
    int64_t herald_window_stop;   /* lost data there flags the round */
} tt_trigger;

/* A round (timetag.records.ROUND_DTYPE: unaligned, so packed). */
typedef struct __attribute__((packed)) {
    int64_t index;
    int64_t trigger_time;
    int64_t herald_time;
    int8_t pattern;
    int8_t setting;
    int32_t count;
    int8_t output;
    uint32_t flags;
} tt_round_record;

/* --- files (cext/fmt_dump.pyx) ---------------------------------------------------------------------------- */

/* A Swabian dump record (timetag.formats.dump.RECORD_DTYPE), 16 bytes. */
typedef struct __attribute__((packed)) {
    uint8_t type;              /* TT_DUMP_* */
    uint8_t reserved;
    uint16_t missed_events;
    int32_t channel;
    int64_t time;
} tt_dump_record;

#endif

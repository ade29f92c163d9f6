/* Constants shared by the C kernels, the Cython modules and Python: their one definition.
 *
 * Python reads them through timetag._cext.constants (cext/constants.pyx) as timetag.constants, where each
 * has its documentation; tests/test_constants.py parses this file and checks every value against Python,
 * so each is a #define of a plain integer expression. */
#ifndef TIMETAG_TT_CONSTANTS_H
#define TIMETAG_TT_CONSTANTS_H

/* --- engine -------------------------------------------------------------------------------------------- */
#define TT_INF (1LL << 62)        /* time 'never'; real times stay inside +-2**61 ps, so t +- INF cannot overflow */
#define TT_PAD 8                  /* INT64_MAX cells after a row's tags: the searches read 8 at a time unchecked */
#define TT_DEFAULT_CHUNK_SIZE 2000000 /* records per chunk a reader hands on unless told otherwise */
#define TT_MAX_SLOTS 256          /* per-slot tables of the split (the lab's channels and the junk slot) */
#define TT_MAX_LAB_CHANNELS 254   /* channels of one lab: slots, the junk slot and room below TT_MAX_SLOTS */
#define TT_MAX_BSM_DETECTORS 64   /* a click key keeps its BSM row in 8 bits; 64 is far beyond any setup */

/* --- herald patterns (records.HERALD_DTYPE / ROUND_DTYPE 'pattern') ------------------------------------ */
#define TT_PATTERN_NONE 0
#define TT_PATTERN_PSI_PLUS 1
#define TT_PATTERN_PSI_MINUS 2
#define TT_PATTERN_OTHER 3
#define TT_SETTING_NONE (-1)      /* ROUND_DTYPE 'setting' when missing or ambiguous */

/* --- round flags (ROUND_DTYPE 'flags', a bit mask) ----------------------------------------------------- */
#define TT_FLAG_LOST_DATA (1 << 0)
#define TT_FLAG_SETTING_MISSING (1 << 1)
#define TT_FLAG_SETTING_AMBIGUOUS (1 << 2)
#define TT_FLAG_HERALD_WITHOUT_READY (1 << 3)
#define TT_FLAG_READY_WITHOUT_HERALD (1 << 4)
#define TT_FLAG_TRUNCATED (1 << 5)

/* --- trigger modes (setup key round.trigger) ----------------------------------------------------------- */
#define TT_TRIGGER_HERALD 0
#define TT_TRIGGER_READY 1
#define TT_TRIGGER_BOTH 2

/* --- channel roles in a lab (bit mask per slot) -------------------------------------------------------- */
#define TT_ROLE_SYNC (1 << 0)
#define TT_ROLE_BSM (1 << 1)
#define TT_ROLE_READY (1 << 2)
#define TT_ROLE_SETTING (1 << 3)
#define TT_ROLE_FLUORESCENCE (1 << 4)

/* --- lost-data events of a tag stream (chunk.LOST_DTYPE 'kind') ----------------------------------------- */
#define TT_LOST_OVERFLOW_BEGIN 1
#define TT_LOST_OVERFLOW_END 2
#define TT_LOST_MISSED 3
#define TT_LOST_ERROR 4

/* --- Swabian dump record types (formats.dump.RECORD_DTYPE 'type') --------------------------------------- */
#define TT_DUMP_TAG 0
#define TT_DUMP_ERROR 1
#define TT_DUMP_OVERFLOW_BEGIN 2
#define TT_DUMP_OVERFLOW_END 3
#define TT_DUMP_MISSED 4

/* --- PicoQuant TTTR records (formats.ptu) --------------------------------------------------------------- */
#define TT_PTU_FAMILY_PICOHARP 0      /* PicoHarp 300 */
#define TT_PTU_FAMILY_HYDRAHARP1 1    /* HydraHarp v1 */
#define TT_PTU_FAMILY_HYDRAHARP2 2    /* HydraHarp v2, TimeHarp 260 N/P, MultiHarp, PicoHarp 330 */
#define TT_PTU_SYNC_CHANNEL 64        /* tag channel of the T2 sync record */
#define TT_PTU_MARKER_BASE 100        /* tag channel of marker bit 0 (bits 0..3) */
/* overflow periods: one wrap-around of the time field, in time units (T2) or sync periods (T3) */
#define TT_PTU_T2_WRAP_PICOHARP 210698240
#define TT_PTU_T2_WRAP_HYDRAHARP1 33552000
#define TT_PTU_T2_WRAP_HYDRAHARP2 (1 << 25)
#define TT_PTU_T3_WRAP_PICOHARP (1 << 16)
#define TT_PTU_T3_WRAP_HYDRAHARP (1 << 10)

#endif

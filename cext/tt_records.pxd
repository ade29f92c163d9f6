# Cython's view of tt_records.h (the declarations live there; a field named here but not there does not
# compile, and record_layouts() lets the tests hold the numpy dtypes to what the C compiler laid out).
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t

cdef extern from "tt_records.h":
    ctypedef struct tt_herald_params:
        int64_t sync_next
        int64_t window_start_ps
        int64_t window_stop_ps
        int64_t coincidence_ps
        int64_t arrival_start_ps
        int64_t arrival_stop_ps
        int64_t arrival_bin_ps
    ctypedef struct tt_herald_state:
        int64_t carry
        int64_t carry_n
        int64_t carry_k1
        int64_t carry_k2
        int64_t clicks_accepted
        int64_t clicks_without_sync
    ctypedef struct tt_herald_io:
        int64_t last_raw
        int64_t horizon
        int64_t attempts
        int64_t closed
        int64_t heralds
        int64_t sync_lo
    ctypedef struct tt_agg:
        int64_t k1
        int64_t k2
        int64_t n
        int64_t pad
    ctypedef struct tt_her:
        int64_t k1
        int64_t k2
        int64_t n
        int64_t sync
    ctypedef packed struct tt_herald_record:
        int64_t time
        int64_t sync_time
        int8_t pattern
        int32_t det1
        int32_t det2
        int64_t dt1
        int64_t dt2
        int32_t nclicks
    ctypedef struct tt_trigger_params:
        int64_t mode
        int64_t ready_delay_ps
        int64_t ready_tolerance_ps
        int64_t window_start_ps
        int64_t window_stop_ps
    ctypedef struct tt_round_params:
        int64_t setting_start_ps
        int64_t setting_stop_ps
        int64_t fluorescence_start_ps
        int64_t fluorescence_stop_ps
        int64_t threshold
    ctypedef struct tt_trigger:
        int64_t time
        int64_t herald_time
        int64_t pattern
        int64_t flags
        int64_t herald_window_start
        int64_t herald_window_stop
    ctypedef packed struct tt_round_record:
        int64_t index
        int64_t trigger_time
        int64_t herald_time
        int8_t pattern
        int8_t setting
        int32_t count
        int8_t output
        uint32_t flags
    ctypedef packed struct tt_dump_record:
        uint8_t type
        uint8_t reserved
        uint16_t missed_events
        int32_t channel
        int64_t time


cdef inline tuple _field(str name, const void* field, const void* rec, size_t size):
    return name, <Py_ssize_t>(<const char*>field - <const char*>rec), <Py_ssize_t>size


cdef inline dict record_layouts_of_all():
    """{C record name: (sizeof, [(field, offset, size), ...])} as this module's C compiler laid them out."""
    cdef tt_herald_params hp
    cdef tt_herald_state hs
    cdef tt_herald_io io
    cdef tt_agg ag
    cdef tt_her he
    cdef tt_herald_record hr
    cdef tt_trigger_params tp
    cdef tt_round_params rp
    cdef tt_trigger tr
    cdef tt_round_record rr
    cdef tt_dump_record dr
    return {
        "tt_herald_params": (sizeof(hp), [
            _field("sync_next", &hp.sync_next, &hp, sizeof(hp.sync_next)),
            _field("window_start_ps", &hp.window_start_ps, &hp, sizeof(hp.window_start_ps)),
            _field("window_stop_ps", &hp.window_stop_ps, &hp, sizeof(hp.window_stop_ps)),
            _field("coincidence_ps", &hp.coincidence_ps, &hp, sizeof(hp.coincidence_ps)),
            _field("arrival_start_ps", &hp.arrival_start_ps, &hp, sizeof(hp.arrival_start_ps)),
            _field("arrival_stop_ps", &hp.arrival_stop_ps, &hp, sizeof(hp.arrival_stop_ps)),
            _field("arrival_bin_ps", &hp.arrival_bin_ps, &hp, sizeof(hp.arrival_bin_ps))]),
        "tt_herald_state": (sizeof(hs), [
            _field("carry", &hs.carry, &hs, sizeof(hs.carry)),
            _field("carry_n", &hs.carry_n, &hs, sizeof(hs.carry_n)),
            _field("carry_k1", &hs.carry_k1, &hs, sizeof(hs.carry_k1)),
            _field("carry_k2", &hs.carry_k2, &hs, sizeof(hs.carry_k2)),
            _field("clicks_accepted", &hs.clicks_accepted, &hs, sizeof(hs.clicks_accepted)),
            _field("clicks_without_sync", &hs.clicks_without_sync, &hs, sizeof(hs.clicks_without_sync))]),
        "tt_herald_io": (sizeof(io), [
            _field("last_raw", &io.last_raw, &io, sizeof(io.last_raw)),
            _field("horizon", &io.horizon, &io, sizeof(io.horizon)),
            _field("attempts", &io.attempts, &io, sizeof(io.attempts)),
            _field("closed", &io.closed, &io, sizeof(io.closed)),
            _field("heralds", &io.heralds, &io, sizeof(io.heralds)),
            _field("sync_lo", &io.sync_lo, &io, sizeof(io.sync_lo))]),
        "tt_agg": (sizeof(ag), [
            _field("k1", &ag.k1, &ag, sizeof(ag.k1)),
            _field("k2", &ag.k2, &ag, sizeof(ag.k2)),
            _field("n", &ag.n, &ag, sizeof(ag.n)),
            _field("pad", &ag.pad, &ag, sizeof(ag.pad))]),
        "tt_her": (sizeof(he), [
            _field("k1", &he.k1, &he, sizeof(he.k1)),
            _field("k2", &he.k2, &he, sizeof(he.k2)),
            _field("n", &he.n, &he, sizeof(he.n)),
            _field("sync", &he.sync, &he, sizeof(he.sync))]),
        "tt_herald_record": (sizeof(hr), [
            _field("time", &hr.time, &hr, sizeof(hr.time)),
            _field("sync_time", &hr.sync_time, &hr, sizeof(hr.sync_time)),
            _field("pattern", &hr.pattern, &hr, sizeof(hr.pattern)),
            _field("det1", &hr.det1, &hr, sizeof(hr.det1)),
            _field("det2", &hr.det2, &hr, sizeof(hr.det2)),
            _field("dt1", &hr.dt1, &hr, sizeof(hr.dt1)),
            _field("dt2", &hr.dt2, &hr, sizeof(hr.dt2)),
            _field("nclicks", &hr.nclicks, &hr, sizeof(hr.nclicks))]),
        "tt_trigger_params": (sizeof(tp), [
            _field("mode", &tp.mode, &tp, sizeof(tp.mode)),
            _field("ready_delay_ps", &tp.ready_delay_ps, &tp, sizeof(tp.ready_delay_ps)),
            _field("ready_tolerance_ps", &tp.ready_tolerance_ps, &tp, sizeof(tp.ready_tolerance_ps)),
            _field("window_start_ps", &tp.window_start_ps, &tp, sizeof(tp.window_start_ps)),
            _field("window_stop_ps", &tp.window_stop_ps, &tp, sizeof(tp.window_stop_ps))]),
        "tt_round_params": (sizeof(rp), [
            _field("setting_start_ps", &rp.setting_start_ps, &rp, sizeof(rp.setting_start_ps)),
            _field("setting_stop_ps", &rp.setting_stop_ps, &rp, sizeof(rp.setting_stop_ps)),
            _field("fluorescence_start_ps", &rp.fluorescence_start_ps, &rp, sizeof(rp.fluorescence_start_ps)),
            _field("fluorescence_stop_ps", &rp.fluorescence_stop_ps, &rp, sizeof(rp.fluorescence_stop_ps)),
            _field("threshold", &rp.threshold, &rp, sizeof(rp.threshold))]),
        "tt_trigger": (sizeof(tr), [
            _field("time", &tr.time, &tr, sizeof(tr.time)),
            _field("herald_time", &tr.herald_time, &tr, sizeof(tr.herald_time)),
            _field("pattern", &tr.pattern, &tr, sizeof(tr.pattern)),
            _field("flags", &tr.flags, &tr, sizeof(tr.flags)),
            _field("herald_window_start", &tr.herald_window_start, &tr, sizeof(tr.herald_window_start)),
            _field("herald_window_stop", &tr.herald_window_stop, &tr, sizeof(tr.herald_window_stop))]),
        "tt_round_record": (sizeof(rr), [
            _field("index", &rr.index, &rr, sizeof(rr.index)),
            _field("trigger_time", &rr.trigger_time, &rr, sizeof(rr.trigger_time)),
            _field("herald_time", &rr.herald_time, &rr, sizeof(rr.herald_time)),
            _field("pattern", &rr.pattern, &rr, sizeof(rr.pattern)),
            _field("setting", &rr.setting, &rr, sizeof(rr.setting)),
            _field("count", &rr.count, &rr, sizeof(rr.count)),
            _field("output", &rr.output, &rr, sizeof(rr.output)),
            _field("flags", &rr.flags, &rr, sizeof(rr.flags))]),
        "tt_dump_record": (sizeof(dr), [
            _field("type", &dr.type, &dr, sizeof(dr.type)),
            _field("reserved", &dr.reserved, &dr, sizeof(dr.reserved)),
            _field("missed_events", &dr.missed_events, &dr, sizeof(dr.missed_events)),
            _field("channel", &dr.channel, &dr, sizeof(dr.channel)),
            _field("time", &dr.time, &dr, sizeof(dr.time))]),
    }

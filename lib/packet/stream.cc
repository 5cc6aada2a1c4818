// The stream reader's steps off the per-segment path: reclaiming the buffers of stalled
// heads, and undoing or settling a frame's bytes in its flow's buffer once decided.
#include "stream.h"

namespace dlb::packet::internal {

bool StreamReader::ReclaimStalledHeads() {
  const int64_t now_ns = ctx_.now_ns;
  const int64_t timeout_ns = ctx_.config.partial_head_timeout_ns;
  if (now_ns < next_reclaim_scan_ns_) return false;
  next_reclaim_scan_ns_ = now_ns + timeout_ns / 4;
  ReassemblyPool& pool = flows_.pool();
  bool freed = false;
  for (uint32_t b = 0; b < pool.count(); ++b) {
    FlowSlot* owner = pool.Owner(static_cast<int32_t>(b));
    if (owner == nullptr || (owner->flags & flow_flags::kPending) ||
        now_ns - pool.SinceNs(static_cast<int32_t>(b)) <= timeout_ns) {
      continue;
    }
    owner->next_seq = flows_.StreamPos(*owner);
    flows_.ReleaseBuffer(*owner);
    owner->phase = Phase::kRefused;
    ++ctx_.counters.stalled_heads_reclaimed;
    freed = true;
  }
  return freed;
}

void StreamReader::Rewind(FlowSlot& f, uint32_t head_seq, Phase phase, uint32_t seg_start, uint32_t seg_end,
                          uint32_t stream_pos) {
  // Back before the flow's PROXY header (a refused one): it is still to be read.
  f.phase = phase == Phase::kHead && flows_.has_proxy_clients() && !(f.flags & flow_flags::kProxyDone)
                ? Phase::kProxyHeader
                : phase;
  f.next_seq = head_seq;
  f.scan_from = 0;
  f.body_remaining = 0;
  f.chunked.Reset();
  if (f.buffer < 0) return;
  ReassemblyPool& pool = flows_.pool();
  uint32_t from = SeqBefore(seg_start, stream_pos) ? stream_pos : seg_start;
  if (SeqBefore(from, f.buf_seq)) from = f.buf_seq;
  if (SeqBefore(from, seg_end) && from - f.buf_seq < pool.bytes()) {
    pool.Clear(f.buffer, from - f.buf_seq, seg_end - f.buf_seq);
  }
  // A head before the buffer's start means the buffer holds only this frame's bytes.
  if (SeqBefore(head_seq, f.buf_seq) || !pool.AnyFrom(f.buffer, 0)) flows_.ReleaseBuffer(f);
}

void StreamReader::Settle(FlowSlot& f) {
  if (f.phase != Phase::kHead && f.phase != Phase::kBody && f.phase != Phase::kChunked &&
      f.phase != Phase::kProxyHeader) {
    flows_.ReleaseBuffer(f);
    return;
  }
  ReassemblyPool& pool = flows_.pool();
  const uint32_t shift = f.next_seq - f.buf_seq;
  if (shift >= pool.bytes() || !pool.AnyFrom(f.buffer, shift)) {
    flows_.ReleaseBuffer(f);
    return;
  }
  if (shift > 0) {
    pool.ShiftLeft(f.buffer, shift);
    f.buf_seq = f.next_seq;
    pool.SetSinceNs(f.buffer, ctx_.now_ns);  // a new head started
  }
}

}  // namespace dlb::packet::internal

// Internal to the engine: stream reassembly and in-order delivery of client->server TCP
// streams. A client segment is placed in its flow's stream (ahead of order, a
// retransmission, or the next bytes), its new bytes are consumed in order (request
// heads, Content-Length and chunked bodies, the PROXY header), and a head split over
// segments is held in a reassembly buffer until it is whole. Complete heads and
// refusals go to the engine through a StreamSink. The per-segment path is templated on
// the sink and defined here, so that it compiles into the engine's own unit (no LTO).
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>

#include "dlb/packet/chunked.h"
#include "dlb/packet/config.h"
#include "dlb/packet/http.h"
#include "dlb/packet/parse.h"
#include "dlb/packet/proxy_protocol.h"
#include "engine_context.h"
#include "flow.h"
#include "flow_table.h"

namespace dlb::packet::internal {

// The engine's side of the client segment being read (its frame of the burst).
template <typename S>
concept StreamSink = requires(S& s, const S& cs, const RequestHead& head, HeadPolicy policy, uint32_t seq) {
  // A complete head starting at `seq`, queued for its decision. False once the frame
  // stopped (a flush decided against it and rolled the flow back): read no further.
  { s.OnHead(head, seq) } -> std::same_as<bool>;
  // The head at `seq` is refused by `policy` (kDrop or kReset), queued.
  s.Refuse(policy, seq);
  // The bytes from `seq` wait for the server's answer to CONNECT / Upgrade, queued.
  s.Hold(seq);
  // Decides everything queued now.
  s.Flush();
  // The segment is dropped unread: the frame stops.
  s.DropFrame();
  // A verdict other than forward settled the frame: no more heads are decided in it.
  { cs.FrameStopped() } -> std::same_as<bool>;
  // Heads of the frame are queued.
  { cs.FramePending() } -> std::same_as<bool>;
  // The frame as parsed (a LOCAL PROXY header names the connection's own source).
  { cs.FrameView() } -> std::same_as<const PacketView&>;
};

class StreamReader {
 public:
  // Reads the settings, the clock and the head options of `ctx` and counts in its
  // counters; the flows and their buffers are those of `flows`.
  StreamReader(EngineContext& ctx, FlowTable& flows) : ctx_(ctx), flows_(flows) {}

  // A segment's payload p[0, len) at stream seq `seq` of flow `f`; `pos`: the server's
  // next expected byte when the frame arrived (FlowTable::StreamPos).
  template <StreamSink Sink>
  void Read(Sink& sink, FlowSlot& f, const uint8_t* p, uint32_t len, uint32_t seq, uint32_t pos) {
    if (f.phase == Phase::kPassthrough) return;
    const uint32_t end = seq + len;
    if (SeqBefore(pos, seq)) {
      AheadOfOrder(sink, f, len, seq, pos);
      return;
    }
    if (SeqBefore(seq, pos) && !Retransmitted(sink, f, p, len, seq, pos)) return;
    if ((f.flags & flow_flags::kServerHole) &&
        !(f.phase == Phase::kBody && uint64_t{end - f.next_seq} <= f.body_remaining)) {
      // Past the body while the server still has a hole in it: dropped as out of
      // order, retransmitted by the client once the hole is filled.
      ++ctx_.counters.out_of_order_dropped;
      sink.DropFrame();
      return;
    }
    if (f.phase == Phase::kAwaitSwitch) {
      HoldForSwitch(sink, seq);
      return;
    }
    if (f.buffer < 0) {
      ConsumeFromPacket(sink, f, p, len, seq);
      return;
    }
    AppendToHeld(sink, f, p, len, seq);
  }

  // Undoes a dropped frame's effect on its flow: back to `head_seq` (the dropped head's
  // start) in `phase`; the bytes this frame added to the buffer are forgotten (the
  // client retransmits them), so nothing of a dropped frame counts as consumed. The
  // frame's payload was [seg_start, seg_end); the server's next byte was `stream_pos`.
  void Rewind(FlowSlot& f, uint32_t head_seq, Phase phase, uint32_t seg_start, uint32_t seg_end,
              uint32_t stream_pos);

  // Once the verdict of a frame that left a buffer held (f.buffer >= 0) is known: the
  // consumed bytes leave the buffer, which goes when nothing of a partial head is left.
  void Settle(FlowSlot& f);

 private:
  // A segment ahead of the server's next expected byte `pos`.
  template <StreamSink Sink>
  void AheadOfOrder(Sink& sink, FlowSlot& f, uint32_t len, uint32_t seq, uint32_t pos) {
    ++ctx_.counters.out_of_order_segments;
    if (f.phase == Phase::kBody && f.buffer < 0 && !(f.flags & flow_flags::kServerHole) &&
        uint64_t{seq - f.next_seq} + len <= f.body_remaining) {
      // Ahead of order inside a Content-Length body: the bytes in between are body,
      // whatever they are, and so is this segment; no head can start before the
      // body's end, which stays where it is. The server has a hole before this
      // segment until the client retransmits the bytes in between: remembered, so
      // that nothing past the body is decided while the server could only queue it
      // out of order (where a longer copy with other bytes may replace it).
      ResponseSlot& side = flows_.ResponseOf(f);
      side.hole_start = pos;
      side.hole_end = seq;
      f.flags |= flow_flags::kServerHole;
      const uint32_t end = seq + len;
      const uint32_t reach = end - f.next_seq;
      f.next_seq = end;
      f.body_remaining -= reach;
      if (f.body_remaining == 0) {
        f.phase = Phase::kHead;
        f.scan_from = 0;
      }
      return;
    }
    // Bytes after a gap must not reach the server before the gap's bytes are
    // decided: a limited head in the gap would otherwise be followed by bytes the
    // server already has. Dropped, never consumed; the client retransmits them.
    ++ctx_.counters.out_of_order_dropped;
    sink.DropFrame();
  }

  // A segment that starts before the server's next expected byte `pos`. Returns whether
  // it brings new bytes (p, len and seq then moved to the first of them).
  template <StreamSink Sink>
  bool Retransmitted(Sink& sink, FlowSlot& f, const uint8_t*& p, uint32_t& len, uint32_t& seq, uint32_t pos) {
    ++ctx_.counters.retransmitted_segments;
    const uint32_t end = seq + len;
    if (f.flags & flow_flags::kServerHole) {
      // A retransmission from the hole's start fills it (from there on).
      ResponseSlot& side = flows_.ResponseOf(f);
      if (!SeqBefore(side.hole_start, seq) && SeqBefore(side.hole_start, end)) {
        side.hole_start = end;
        if (!SeqBefore(side.hole_start, side.hole_end)) {
          f.flags &= static_cast<uint8_t>(~flow_flags::kServerHole);
        }
      }
    }
    // The overlap with bytes of the partial head the server holds must be the same
    // bytes: Linux may keep either copy, so a conflict means the engine cannot know
    // what the server reads.
    if (f.buffer >= 0) {
      const uint32_t from = SeqBefore(seq, f.buf_seq) ? f.buf_seq : seq;
      const uint32_t to = SeqBefore(end, pos) ? end : pos;
      if (SeqBefore(from, to) &&
          std::memcmp(flows_.pool().Data(f.buffer) + (from - f.buf_seq), p + (from - seq), to - from) != 0) {
        ++ctx_.counters.conflicting_overlaps;
        sink.Refuse(HeadPolicy::kReset, f.next_seq);
        return false;
      }
    }
    if (!SeqBefore(pos, end)) return false;  // nothing new
    p += pos - seq;
    len = end - pos;
    seq = pos;
    return true;
  }

  // New bytes p[0, len) at `seq` == f.next_seq, no partial head held: read from the
  // packet itself.
  template <StreamSink Sink>
  void ConsumeFromPacket(Sink& sink, FlowSlot& f, const uint8_t* p, uint32_t len, uint32_t seq) {
    Consume(sink, f, p, len, false);
    if (f.phase == Phase::kAwaitSwitch && f.next_seq != seq + len) HoldForSwitch(sink, f.next_seq);
  }

  // New bytes p[0, len) at `seq`, appended to the held partial head. A segment larger
  // than the room left is taken in pieces: the held head ends in the first, what
  // follows is consumed as usual.
  template <StreamSink Sink>
  void AppendToHeld(Sink& sink, FlowSlot& f, const uint8_t* p, uint32_t len, uint32_t seq) {
    ReassemblyPool& pool = flows_.pool();
    uint32_t off = seq - f.buf_seq;
    for (;;) {
      const uint32_t room = pool.bytes() - off;
      const uint32_t n = len < room ? len : room;
      pool.Write(f.buffer, off, p, n);
      const uint32_t start = f.next_seq - f.buf_seq;
      Consume(sink, f, pool.Data(f.buffer) + start, off + n - start, true);
      p += n;
      len -= n;
      seq += n;
      if (sink.FrameStopped()) return;
      if (f.phase == Phase::kAwaitSwitch) {
        if (f.next_seq != seq + len) HoldForSwitch(sink, f.next_seq);
        return;
      }
      if (len == 0 || f.phase == Phase::kPassthrough) return;
      if ((f.phase == Phase::kHead || f.phase == Phase::kProxyHeader) && f.next_seq == f.buf_seq) {
        return;  // a policy event is queued
      }
      // The buffer is about to change: heads queued from it are decided first, so that
      // a rollback never needs bytes that left the buffer.
      if (sink.FramePending()) {
        sink.Flush();
        if (sink.FrameStopped()) return;
      }
      if (f.next_seq == seq) {
        // All held bytes consumed: the rest is read from the packet.
        flows_.ReleaseBuffer(f);
        ConsumeFromPacket(sink, f, p, len, seq);
        return;
      }
      // A new partial head at next_seq: moved to the buffer's start.
      const uint32_t shift = f.next_seq - f.buf_seq;
      pool.ShiftLeft(f.buffer, shift);
      f.buf_seq = f.next_seq;
      pool.SetSinceNs(f.buffer, ctx_.now_ns);
      off = seq - f.buf_seq;
    }
  }

  // Consumes contiguous stream bytes p[0, len) that start at f.next_seq.
  template <StreamSink Sink>
  void Consume(Sink& sink, FlowSlot& f, const uint8_t* p, uint32_t len, bool from_buffer) {
    while (len > 0) {
      switch (f.phase) {
        case Phase::kBody: SkipBody(f, p, len); break;
        case Phase::kChunked:
          if (!SkipChunked(sink, f, p, len)) return;
          break;
        case Phase::kProxyHeader:
          if (!ConsumeProxyHeader(sink, f, p, len, from_buffer)) return;
          break;
        case Phase::kHead:
          if (!ConsumeHead(sink, f, p, len, from_buffer)) return;
          break;
        case Phase::kPassthrough:
        case Phase::kClosed:
        case Phase::kAwaitSwitch:
        case Phase::kRefused: return;
      }
    }
  }

  // Bytes of a Content-Length body, p[0, len) at f.next_seq: skipped up to the body's
  // end (p and len moved past them), where a head is next.
  static void SkipBody(FlowSlot& f, const uint8_t*& p, uint32_t& len) {
    const uint32_t n = f.body_remaining < len ? static_cast<uint32_t>(f.body_remaining) : len;
    f.next_seq += n;
    p += n;
    len -= n;
    f.body_remaining -= n;
    if (f.body_remaining == 0) {
      f.phase = Phase::kHead;
      f.scan_from = 0;
    }
  }

  // Bytes of a chunked body, p[0, len) at f.next_seq: followed up to the body's end (p
  // and len moved past them), where a head is next. False if the body is malformed (a
  // policy event is queued).
  template <StreamSink Sink>
  bool SkipChunked(Sink& sink, FlowSlot& f, const uint8_t*& p, uint32_t& len) {
    size_t used = 0;
    const ChunkedDecoder::Result r = f.chunked.Feed(p, len, used);
    f.next_seq += static_cast<uint32_t>(used);
    p += used;
    len -= static_cast<uint32_t>(used);
    if (r == ChunkedDecoder::Result::kDone) {
      f.phase = Phase::kHead;
      f.scan_from = 0;
    } else if (r == ChunkedDecoder::Result::kError) {
      ++ctx_.counters.malformed_chunked;
      HeadPolicyEvent(sink, f, ctx_.config.on_malformed_head, f.next_seq);
      return false;
    }
    return true;
  }

  // The head at f.next_seq, p[0, len). Returns whether the bytes after it are to be
  // read (p and len moved past the head, the phase set for its body); otherwise the
  // head is incomplete (held), refused (a policy event is queued), stopped its frame,
  // or waits for a protocol switch.
  template <StreamSink Sink>
  bool ConsumeHead(Sink& sink, FlowSlot& f, const uint8_t*& p, uint32_t& len, bool from_buffer) {
    const uint32_t head_seq = f.next_seq;
    if (f.scan_from == 0) {
      // Empty lines before a request line are ignored (RFC 9112, 2.2); clients
      // send a stray CRLF after a body.
      while (len > 0 && (*p == '\r' || *p == '\n')) {
        ++p;
        --len;
        ++f.next_seq;
      }
      if (len == 0) return false;
    }
    RequestHead head;
    const HeadResult r = ReadHead(f, p, len, from_buffer, head);
    if (r != HeadResult::kOk) {
      UnreadHead(sink, f, r, p, len, from_buffer, head_seq);
      return false;
    }
    const uint32_t head_bytes = head.head_bytes;
    const bool first = !(f.flags & flow_flags::kSeenHead);
    if (!sink.OnHead(head, head_seq)) return false;  // a flush stopped this frame (and rolled f back)
    f.flags |= flow_flags::kSeenHead;
    // A tunnel (CONNECT) or another protocol (Upgrade) follows only if the server
    // agrees. Followed for the first request of a connection, whose answer is the
    // server's first status line; later ones stay HTTP (if the server switches
    // anyway, the next client bytes are not a request: a desync, refused).
    const bool await_switch = first && !head.chunked && head.content_length == 0 &&
                              (head.method == Method::kConnect || HasUpgradeField(p, head_bytes));
    f.next_seq += head_bytes;
    p += head_bytes;
    len -= head_bytes;
    f.scan_from = 0;
    if (await_switch) {
      f.phase = Phase::kAwaitSwitch;
      f.flags =
          static_cast<uint8_t>(head.method == Method::kConnect ? (f.flags | flow_flags::kAwaitConnect)
                                                               : (f.flags & ~flow_flags::kAwaitConnect));
      return false;
    }
    if (head.chunked) {
      f.phase = Phase::kChunked;
      f.chunked.Reset();
    } else if (head.content_length > 0) {
      f.phase = Phase::kBody;
      f.body_remaining = head.content_length;
    }
    return true;
  }

  // Finds and parses the head at p[0, len) (at f.next_seq, empty lines skipped).
  HeadResult ReadHead(FlowSlot& f, const uint8_t* p, uint32_t len, bool from_buffer,
                      RequestHead& head) const {
    if (!from_buffer) {
      // The common case, a whole head in one segment: one pass finds and parses it.
      // Anything but a head is then told apart as before: what does not start like
      // a request is not HTTP, whatever the parser said about the rest.
      HeadResult r = ParseRequestHead(p, len, ctx_.head_options, head);
      if (r != HeadResult::kOk && CheckRequestStart(p, len) == HeadResult::kNotHttp) r = HeadResult::kNotHttp;
      return r;
    }
    HeadResult r = CheckRequestStart(p, len);
    if (r == HeadResult::kOk) {
      // A head growing in the buffer: find its end incrementally (a head sent a
      // byte at a time stays linear), parse it once complete.
      uint32_t head_bytes = 0;
      r = FindHeadEnd(p, len, ctx_.config.max_head_bytes, f.scan_from, head_bytes);
      if (r == HeadResult::kOk) r = ParseRequestHead(p, head_bytes, ctx_.head_options, head);
    }
    return r;
  }

  // A head at `head_seq`, p[0, len), that ReadHead did not return whole (`r`): held
  // while incomplete, else refused by the policy for what it is.
  template <StreamSink Sink>
  void UnreadHead(Sink& sink, FlowSlot& f, HeadResult r, const uint8_t* p, uint32_t len, bool from_buffer,
                  uint32_t head_seq) {
    if (r != HeadResult::kIncomplete && LooksLikeProxyHeader(p, len)) {
      // A PROXY header where none may be (not configured, or a second one): a
      // client naming its own address, or a stream the engine no longer follows.
      // Refused, whatever on_not_http says: a server that reads the header would
      // execute requests the engine passed through undecided.
      ++ctx_.counters.proxy_header_unexpected;
      HeadPolicyEvent(sink, f, RefusalPolicy(ctx_.config.on_malformed_head), head_seq);
      return;
    }
    switch (r) {
      case HeadResult::kNotHttp:
        ++ctx_.counters.not_http;
        if (f.flags & flow_flags::kSeenHead) {
          // Not a request where one must start: the server frames this stream in a
          // way the engine did not follow (or someone hopes it does). Refused;
          // on_not_http is for connections that never were HTTP.
          ++ctx_.counters.desync_resets;
          HeadPolicyEvent(sink, f, HeadPolicy::kReset, head_seq);
        } else {
          HeadPolicyEvent(sink, f, ctx_.config.on_not_http, head_seq);
        }
        return;
      case HeadResult::kTooLarge:
        ++ctx_.counters.oversize_heads;
        HeadPolicyEvent(sink, f, ctx_.config.on_oversize_head, head_seq);
        return;
      case HeadResult::kIncomplete:
        if (!from_buffer) StashHead(sink, f, p, len, head_seq);
        return;
      default:
        ++ctx_.counters.malformed_heads;
        ++ctx_.counters.malformed_head[static_cast<int>(r)];
        HeadPolicyEvent(sink, f, ctx_.config.on_malformed_head, head_seq);
        return;
    }
  }

  // The PROXY header at the flow's start, p[0, len) at f.next_seq. Returns whether the
  // bytes after it are to be read as heads (kHead, p and len moved past the header);
  // otherwise the header is incomplete (held) or refused (a policy event is queued).
  template <StreamSink Sink>
  bool ConsumeProxyHeader(Sink& sink, FlowSlot& f, const uint8_t*& p, uint32_t& len, bool from_buffer) {
    ProxyHeader h;
    switch (ParseProxyHeader(p, len, ctx_.config.proxy_protocol, ctx_.config.max_head_bytes, h)) {
      case ProxyResult::kOk: break;
      case ProxyResult::kIncomplete:
        if (!from_buffer) StashHead(sink, f, p, len, f.next_seq);
        return false;
      case ProxyResult::kMissing:
        ++ctx_.counters.proxy_header_missing;
        HeadPolicyEvent(sink, f, RefusalPolicy(ctx_.config.on_malformed_head), f.next_seq);
        return false;
      case ProxyResult::kMalformed:
        ++ctx_.counters.proxy_header_malformed;
        HeadPolicyEvent(sink, f, RefusalPolicy(ctx_.config.on_malformed_head), f.next_seq);
        return false;
      case ProxyResult::kTooLong:
        ++ctx_.counters.proxy_header_too_long;
        HeadPolicyEvent(sink, f, RefusalPolicy(ctx_.config.on_malformed_head), f.next_seq);
        return false;
    }
    ClientAddress& client = flows_.ProxyClientOf(f);
    if (h.local) {
      // No address in the header: the connection's own source is the client.
      ++ctx_.counters.proxy_headers_local;
      const PacketView& v = sink.FrameView();
      client.ip_version = v.ip_version == 4 ? 4 : 6;
      std::memset(client.bytes, 0, sizeof client.bytes);
      std::memcpy(client.bytes, v.src_addr, client.size());
    } else {
      ++ctx_.counters.proxy_headers;
      client = h.source;
    }
    // The header goes on to the server, which expects it; heads start after it.
    f.flags |= flow_flags::kProxyDone;
    f.phase = Phase::kHead;
    f.scan_from = 0;
    f.next_seq += h.bytes;
    p += h.bytes;
    len -= h.bytes;
    return true;
  }

  // Keeps an incomplete head that arrived in the packet itself: copied into a buffer at
  // offset 0 (buf_seq = the head's start).
  template <StreamSink Sink>
  void StashHead(Sink& sink, FlowSlot& f, const uint8_t* p, uint32_t len, uint32_t head_seq) {
    ReassemblyPool& pool = flows_.pool();
    f.buffer = pool.Acquire(&f, ctx_.now_ns);
    if (f.buffer < 0 && ReclaimStalledHeads()) f.buffer = pool.Acquire(&f, ctx_.now_ns);
    if (f.buffer < 0) {
      // Forwarding the partial head would let it complete undecided: the segment is
      // dropped (heads before it in the segment go on) and the client retransmits it.
      ++ctx_.counters.reassembly_buffers_exhausted;
      sink.Refuse(HeadPolicy::kDrop, head_seq);
      return;
    }
    f.buf_seq = f.next_seq;
    const uint32_t n = len < pool.bytes() ? len : pool.bytes();
    pool.Write(f.buffer, 0, p, n);
  }

  // Frees the buffers of partial heads that started more than partial_head_timeout_ns
  // ago. Those heads can no longer be decided, so their flows are refused (reset) at
  // their next segment; until then the server holds an incomplete head, which it does
  // not execute. A scan of the pool, only when it is empty and at most four times per
  // timeout, so that an attacker who keeps it empty cannot make every segment pay for
  // a scan.
  bool ReclaimStalledHeads();

  // A head that cannot be decided (not HTTP, malformed, too large), starting at
  // `head_seq`.
  template <StreamSink Sink>
  void HeadPolicyEvent(Sink& sink, FlowSlot& f, HeadPolicy policy, uint32_t head_seq) {
    if (policy == HeadPolicy::kForward) {
      f.phase = Phase::kPassthrough;
      return;
    }
    sink.Refuse(policy, head_seq);
  }

  // New client bytes of a flow waiting for the server's answer to CONNECT / Upgrade
  // (from `seq` on) are held back: cut off or dropped, retransmitted by the client.
  template <StreamSink Sink>
  void HoldForSwitch(Sink& sink, uint32_t seq) {
    ++ctx_.counters.switch_held_segments;
    sink.Hold(seq);
  }

  // A refusal that must not forward: kForward (passthrough) would let what follows
  // reach the server undecided, so it counts as kReset.
  static HeadPolicy RefusalPolicy(HeadPolicy p) { return p == HeadPolicy::kForward ? HeadPolicy::kReset : p; }

  // Whether a head (request line to the empty line) has an Upgrade header field. Looked
  // for in the first head of a connection only.
  static bool HasUpgradeField(const uint8_t* p, uint32_t len) {
    static constexpr char kName[] = "upgrade:";
    for (uint32_t i = 0; i + 9 < len; ++i) {
      if (p[i] != '\n') continue;
      uint32_t k = 0;
      while (k < 8 && (p[i + 1 + k] | 0x20) == kName[k]) ++k;  // ':' | 0x20 == ':'
      if (k == 8) return true;
    }
    return false;
  }

  EngineContext& ctx_;
  FlowTable& flows_;
  int64_t next_reclaim_scan_ns_ = 0;  // ReclaimStalledHeads: not before this time
};

}  // namespace dlb::packet::internal

// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The request head's scan: copied into the per-CPU scratch, read a word at a time,
 * one line per step of bpf_loop (global functions, each verified once); the path's
 * normal form (lib/dlb/path.h). */
#pragma once

/* ---- HTTP request head ---------------------------------------------------------- */

enum dlb_head {
	DLB_H_MORE = DLB_XDP_SCAN_MORE, DLB_H_OK = DLB_XDP_SCAN_OK,
	DLB_H_NOT_HTTP = DLB_XDP_SCAN_NOT_HTTP, DLB_H_MALFORMED = DLB_XDP_SCAN_MALFORMED,
	DLB_H_SLOW = DLB_XDP_SCAN_SLOW,
	DLB_H_ERROR = 255,             /* the payload could not be read: passed, not counted */
};

/* Where the scan resumes: the request line's method, target and version, then a header
 * line's name and its value. */
enum dlb_phase {
	DLB_PH_METHOD = 0, DLB_PH_TARGET, DLB_PH_VERSION, DLB_PH_NAME, DLB_PH_VALUE,
};

/* Bytes of the head copied before the method is checked: a payload that does not start a
 * request line costs no more than this. Covers the longest method, its space and the
 * word read at byte 24. */
#define DLB_METHOD_BYTES 32
/* Words (or single-byte steps) one call of the scan's loop body takes in one search
 * before it saves its position and returns to bpf_loop, which calls it again. */
#define DLB_SCAN_STEPS 32

#define DLB_TCP_FIN 0x01
#define DLB_TCP_SYN 0x02
#define DLB_TCP_RST 0x04
#define DLB_TCP_ACK 0x10

#define DLB_ONES 0x0101010101010101ULL
#define DLB_FOLD 0x2020202020202020ULL     /* letters to lower case (names compared) */
#define DLB_HIGHS 0x8080808080808080ULL
#define DLB_LOW7 0x7f7f7f7f7f7f7f7fULL
#define DLB_HTTP11 0x312e312f50545448ULL   /* "HTTP/1.1" as a little-endian word */

static __always_inline __u8 head_byte(__u32 cpu, __u32 i)
{
	return dlb_scratch[cpu & (DLB_MAX_CPUS - 1)].head[i & DLB_SCAN_MASK];
}

/* Eight head bytes from p (little-endian: byte p in the low bits). The head buffer is
 * followed by more scratch, so the word never leaves the map value; bytes at or past
 * the scan's n are stale and every search ignores what it finds there. */
static __always_inline __u64 head_word(const struct dlb_scratch *sc, __u32 p)
{
	return *(const __u64 *)(sc->head + (p & DLB_SCAN_MASK));
}

/* Byte flags are 0x80 in each flagged byte. The index of the lowest flagged byte of
 * m != 0: its lowest bit is 1 << (8k + 7); shifted to 1 << 8k, the multiplication
 * moves byte 7 - k of the constant (k) into the top byte. */
static __always_inline __u32 first_flag(__u64 m)
{
	return (__u32)((((m & -m) >> 7) * 0x0001020304050607ULL) >> 56);
}

/* Flags of the bytes equal to c: exact at the lowest flagged byte (a borrow may flag
 * bytes above it), which is all the searches use. */
static __always_inline __u64 eq_first(__u64 w, __u64 c)
{
	__u64 y = w ^ (c * DLB_ONES);
	return (y - DLB_ONES) & ~y & DLB_HIGHS;
}

/* Flags of the bytes outside [A-Za-z0-9-] (and CR, when cr_ok), exact in every byte:
 * each range test adds a constant to 7-bit bytes, which never carries into the next
 * byte. Header names and methods are mostly these bytes; a flagged byte is then looked
 * at alone (':', LF, another tchar, or a malformed byte). */
static __always_inline __u64 name_stops(__u64 w, int cr_ok)
{
	__u64 x7 = w & DLB_LOW7;
	__u64 f = x7 | (0x20 * DLB_ONES);            /* letters folded to lower case */
	__u64 alpha = (f + 0x1f * DLB_ONES) & ~(f + 0x05 * DLB_ONES);     /* 0x61..0x7a */
	__u64 digit = (x7 + 0x50 * DLB_ONES) & ~(x7 + 0x46 * DLB_ONES);   /* 0x30..0x39 */
	/* '-' (0x2d); folded, CR (0x0d) is 0x2d too */
	__u64 dash = ~(((cr_ok ? f : x7) ^ (0x2d * DLB_ONES)) + DLB_LOW7);
	__u64 good = (alpha | digit | dash) & ~w & DLB_HIGHS;
	return good ^ DLB_HIGHS;
}

/* Flags of the bytes not allowed in a request target (<= 0x20 or DEL): exact at the
 * lowest. */
static __always_inline __u64 target_stops(__u64 w)
{
	__u64 ctl = ~((w & DLB_LOW7) + 0x5f * DLB_ONES) & ~w & DLB_HIGHS;   /* < 0x21 */
	return ctl | eq_first(w, 0x7f);
}

/* Flags of the control bytes (< 0x20) and DEL: exact at the lowest (the test for
 * controls is exact in every byte; DEL's, at its lowest). */
static __always_inline __u64 value_ctls(__u64 w)
{
	__u64 ctl = ~((w & DLB_LOW7) + 0x60 * DLB_ONES) & ~w & DLB_HIGHS;   /* < 0x20 */
	return ctl | eq_first(w, 0x7f);
}

/* Flags of the bytes other than SP, HT and CR, exact in every byte. */
static __always_inline __u64 value_bytes(__u64 w)
{
	__u64 sp = w ^ (0x20 * DLB_ONES), ht = w ^ (0x09 * DLB_ONES), cr = w ^ (0x0d * DLB_ONES);
	__u64 nz_sp = ((sp & DLB_LOW7) + DLB_LOW7) | sp;
	__u64 nz_ht = ((ht & DLB_LOW7) + DLB_LOW7) | ht;
	__u64 nz_cr = ((cr & DLB_LOW7) + DLB_LOW7) | cr;
	return nz_sp & nz_ht & nz_cr & DLB_HIGHS;
}

static __always_inline int is_tchar(__u8 c)
{
	/* RFC 9110 tchar as two 64-bit maps: ! # $ % & ' * + - . 0-9, then A-Z ^ _ ` a-z | ~ */
	if (c < 64)
		return (0x03ff6cfa00000000ULL >> c) & 1;
	if (c < 128)
		return (0x57ffffffc7fffffeULL >> (c - 64)) & 1;
	return 0;
}

/* A value computed in a loop, passed through the scratch memory: the verifier knows
 * nothing about what it reads back, so the code after the loop is checked once rather
 * than once per iteration the loop may have left at. */
static __always_inline __u32 launder(struct dlb_scan *s, __u32 v)
{
	s->tmp = v;
	asm volatile("" ::: "memory");
	return *(volatile __u32 *)&s->tmp;
}

/* A field of the scan state as the verifier first saw it (an unknown value), not as the
 * comparisons of a loop's iteration narrowed it; see launder(). */
#define DLB_RELOAD(field) ({ asm volatile("" ::: "memory"); *(volatile __u32 *)&(field); })

static __always_inline long scan_done(struct dlb_scan *s, __u8 result)
{
	s->result = result;
	return 1;
}

static __always_inline long scan_suspend(struct dlb_scan *s, __u32 phase, __u32 p)
{
	s->phase = phase;
	s->pos = p;
	return 0;
}

/* The request line from byte 0: the method, a token of at most DLB_XDP_MAX_METHOD
 * bytes, then SP. Sets sp1 and the phase; otherwise the result. Reads only the first
 * DLB_METHOD_BYTES bytes. */
static __always_inline long scan_method(struct dlb_scratch *sc, struct dlb_scan *s, __u32 n)
{
	__u32 p = 0;

#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_XDP_MAX_METHOD + 2; k++) {   /* each step takes >= 1 byte */
		__u64 stops;
		__u32 j;
		__u8 c;

		if (p >= n)
			return scan_done(s, DLB_H_MORE);
		if (p > DLB_XDP_MAX_METHOD)
			break;
		/* the first flagged byte, else the word's last byte (a token byte) */
		stops = name_stops(head_word(sc, p), 0);
		j = p + first_flag(stops | (0x80ULL << 56));
		if (j > DLB_XDP_MAX_METHOD) {
			/* a token byte at DLB_XDP_MAX_METHOD: too long */
			return scan_done(s, DLB_XDP_MAX_METHOD >= n ? DLB_H_MORE : DLB_H_NOT_HTTP);
		}
		if (j >= n)
			return scan_done(s, DLB_H_MORE);
		c = sc->head[j & DLB_SCAN_MASK];
		if (c == ' ' && j > 0) {
			s->sp1 = j + 1;
			return scan_suspend(s, DLB_PH_TARGET, j + 1);
		}
		if (!is_tchar(c) || j >= DLB_XDP_MAX_METHOD)
			return scan_done(s, DLB_H_NOT_HTTP);
		p = j + 1;
	}
	return scan_done(s, DLB_H_NOT_HTTP);
}

/* The target up to SP: no control bytes, no DEL; the first '?' noted. */
static __always_inline long scan_target(struct dlb_scratch *sc, struct dlb_scan *s, __u32 p,
					__u32 n)
{
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_SCAN_STEPS; k++) {
		__u64 w, stops, qs;
		__u32 j;

		if (p >= n)
			return scan_done(s, DLB_H_MORE);
		w = head_word(sc, p);
		stops = target_stops(w);
		qs = eq_first(w, '?');
		j = stops ? p + first_flag(stops) : p + 8;
		if (qs && !s->q) {
			__u32 qj = p + first_flag(qs);
			if (qj < j)
				s->q = qj + 1;
		}
		if (!stops) {
			p = j;
			continue;
		}
		if (j >= n)
			return scan_done(s, DLB_H_MORE);
		if (sc->head[j & DLB_SCAN_MASK] != ' ')
			return scan_done(s, DLB_H_MALFORMED);
		s->sp2 = j + 1;
		return scan_suspend(s, DLB_PH_VERSION, j + 1);
	}
	return scan_suspend(s, DLB_PH_TARGET, p);
}

/* The first LF at or after p: its position, n when there is none before n, or n + 1
 * when the step budget ran out at *resume. */
static __always_inline __u32 find_lf(const struct dlb_scratch *sc, __u32 p, __u32 n,
				     __u32 *resume)
{
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_SCAN_STEPS; k++) {
		__u64 lfs;

		if (p >= n)
			return n;
		lfs = eq_first(head_word(sc, p), '\n');
		if (lfs) {
			__u32 e = p + first_flag(lfs);
			return e < n ? e : n;
		}
		p += 8;
	}
	*resume = p;
	return n + 1;
}

/* The version up to LF: exactly HTTP/1.1 or HTTP/1.0, optionally followed by CR. */
static __always_inline long scan_version(struct dlb_scratch *sc, struct dlb_scan *s, __u32 p,
					 __u32 n)
{
	__u32 resume = 0, e, le, vo;

	e = launder(s, find_lf(sc, p, n, &resume));
	if (e == n + 1)
		return scan_suspend(s, DLB_PH_VERSION, resume);
	n = DLB_RELOAD(s->n);
	if (e >= n || e > DLB_HEAD_BYTES)
		return scan_done(s, DLB_H_MORE);
	le = e;
	if (le > 0 && sc->head[(le - 1) & DLB_SCAN_MASK] == '\r')
		le--;
	vo = s->sp2;
	if (le != vo + 8 || vo == s->sp1 + 1 || (head_word(sc, vo) | (1ULL << 56)) != DLB_HTTP11)
		return scan_done(s, DLB_H_MALFORMED);
	s->http10 = sc->head[(vo + 7) & DLB_SCAN_MASK] == '0';
	s->line_no = 1;
	s->line_start = e + 1;
	return scan_suspend(s, DLB_PH_NAME, e + 1);
}

/* A Content-Length value [vs, ve): 1 to DLB_MAX_CL_DIGITS digits, nothing else (a list,
 * a sign or a space inside is malformed, as in the engine). 0 when malformed. */
#define DLB_MAX_CL_DIGITS 9
static __always_inline int parse_cl(const struct dlb_scratch *sc, __u32 vs, __u32 ve, __u32 *out)
{
	__u32 v = 0;

	if (ve <= vs || ve - vs > DLB_MAX_CL_DIGITS)
		return 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_MAX_CL_DIGITS; k++) {
		__u8 c;
		if (vs + k >= ve)
			break;
		c = sc->head[(vs + k) & DLB_SCAN_MASK];
		if (c < '0' || c > '9')
			return 0;
		v = v * 10 + (c - '0');
	}
	*out = v;
	return 1;
}

/* The value of a Host or identity line, [from, e): OWS and CR trimmed at both ends. */
static __always_inline void trim_value(const struct dlb_scratch *sc, struct dlb_scan *s,
				       __u32 from, __u32 e)
{
	__u32 p = from, vs = e, q;

	s->tmp2 = e;

#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_HEAD_BYTES / 8 + 1; k++) {
		__u64 m;
		if (p >= e)
			break;
		m = value_bytes(head_word(sc, p));
		if (m) {
			__u32 j = p + first_flag(m);
			if (j < e)
				vs = j;
			break;
		}
		p += 8;
	}
	vs = launder(s, vs);
	s->vstart = vs;
	s->vend = vs;
	e = DLB_RELOAD(s->tmp2);
	if (vs >= e || e > DLB_HEAD_BYTES)
		return;
	/* The last value byte: vs is one, so the search ends there at the latest. Words
	 * end at q, from e down. */
	q = e;
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_HEAD_BYTES / 8 + 1; k++) {
		__u64 m;
		__u32 hi = 0;
		if (q <= vs)
			break;
		m = value_bytes(head_word(sc, q - 8));
		if (m) {
			/* the highest flagged byte */
			if (m >> 32) {
				hi += 4;
				m >>= 32;
			}
			if (m >> 16) {
				hi += 2;
				m >>= 16;
			}
			if (m >> 8)
				hi += 1;
			s->vend = q - 8 + hi + 1;
			return;
		}
		q -= 8;
	}
}

/* The lines whose values the program keeps (dlb_header_value's `which`). */
#define DLB_HV_HOST 1
#define DLB_HV_ID 2
#define DLB_HV_CL 4

/* The value [hv_from, hv_end) of the Host, identity or Content-Length line the last
 * step found (hv_which), trimmed and kept in the scan; 1 once the head is found
 * malformed (s->result set). A global function, for
 * the reason given at dlb_scan_one: its branches are checked once, not once per path
 * through the line's scan. */
__noinline long dlb_header_value(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	struct dlb_scan *s = &sc->scan;
	__u32 which = s->hv_which, from = s->hv_from, e = s->hv_end;
	__u32 vs, ve;

	s->hv_which = 0;
	if (!which)
		return 0;
	if (e > DLB_HEAD_BYTES || from > e)
		return scan_done(s, DLB_H_MALFORMED);
	trim_value(sc, s, from, e);
	vs = s->vstart;
	ve = s->vend;
	if (vs > ve || ve > e)
		return scan_done(s, DLB_H_MALFORMED);
	if (which & DLB_HV_HOST) {
		if (s->have_host)
			return scan_done(s, DLB_H_MALFORMED);   /* duplicate Host */
		s->have_host = 1;
		s->host_off = vs;
		s->host_len = ve - vs;
	}
	if (which & DLB_HV_CL) {
		__u32 cl = 0;
		if (s->have_cl || !parse_cl(sc, vs, ve, &cl))
			return scan_done(s, DLB_H_MALFORMED);   /* duplicate or not a number */
		s->have_cl = 1;
		s->cl = cl;
	}
	if (which & DLB_HV_ID) {
		__u32 p = vs;

		if (s->have_id)
			return scan_done(s, DLB_H_MALFORMED);   /* duplicate identity */
		if (ve - vs > s->max_id)
			return scan_done(s, DLB_H_MALFORMED);   /* identity too long */
		/* a control byte or DEL in the value: the same ID to a server that strips
		 * them, another bucket here (docs/identity.md). A word at a time: an ID may be
		 * as long as the head. */
#pragma clang loop unroll(disable)
		for (int k = 0; k < DLB_HEAD_BYTES / 8; k++) {
			__u64 m;
			if (p >= ve)
				break;
			m = value_ctls(head_word(sc, p));
			if (m) {
				/* the first flagged byte is a control byte or DEL; past ve, the
				 * value has none */
				if (p + first_flag(m) < ve)
					return scan_done(s, DLB_H_MALFORMED);
				break;
			}
			p += 8;
		}
		s->have_id = 1;
		s->id_off = vs;
		s->id_len = ve - vs;
	}
	return 0;
}

/* A header line from its start: the name (tchar and CR, at least one byte) up to ':',
 * then the value up to LF; or the empty line that ends the head. */
static __always_inline long scan_header(struct dlb_scratch *sc, struct dlb_scan *s,
					__u32 phase, __u32 p, __u32 n)
{
	__u32 ls = s->line_start;
	__u32 resume = 0, colon, e, name_len;
	int host_m, id_m, cl_m, te_m;

	if (ls > p || ls >= DLB_HEAD_BYTES)
		return scan_done(s, DLB_H_MALFORMED);
	if (phase == DLB_PH_NAME) {
		__u32 stop = n + 1;
#pragma clang loop unroll(disable)
		for (int k = 0; k < DLB_SCAN_STEPS; k++) {   /* each step takes >= 1 byte */
			__u64 stops;
			__u32 j;
			__u8 c;

			if (p >= n)
				return scan_done(s, DLB_H_MORE);
			/* The first flagged byte, else the word's last byte (a name byte then):
			 * one way round the loop, so the verifier's states do not fork per
			 * iteration. */
			stops = name_stops(head_word(sc, p), 1);
			j = p + first_flag(stops | (0x80ULL << 56));
			if (j >= n)
				return scan_done(s, DLB_H_MORE);
			c = sc->head[j & DLB_SCAN_MASK];
			if (c == ':' || c == '\n') {
				stop = j;
				break;
			}
			/* obs-fold (a line starting with OWS), a bad name byte */
			if (c != '\r' && !is_tchar(c))
				return scan_done(s, DLB_H_MALFORMED);
			p = j + 1;
		}
		if (stop == n + 1)
			return scan_suspend(s, DLB_PH_NAME, p);
		stop = launder(s, stop);
		n = DLB_RELOAD(s->n);
		ls = DLB_RELOAD(s->line_start);
		if (n > DLB_HEAD_BYTES || ls >= DLB_HEAD_BYTES)
			return scan_done(s, DLB_H_MALFORMED);
		if (stop >= n)
			return scan_done(s, DLB_H_MALFORMED);
		if (sc->head[stop & DLB_SCAN_MASK] == '\n') {
			if (stop == ls || (stop == ls + 1 && sc->head[ls & DLB_SCAN_MASK] == '\r')) {
				s->head_end = stop + 1;      /* the empty line */
				return scan_done(s, DLB_H_OK);
			}
			return scan_done(s, DLB_H_MALFORMED);   /* no ':' */
		}
		if (stop == ls)
			return scan_done(s, DLB_H_MALFORMED);   /* empty name */
		s->colon = stop + 1;
		p = stop + 1;
	}
	colon = s->colon;
	if (colon <= ls || colon > p)
		return scan_done(s, DLB_H_MALFORMED);
	e = launder(s, find_lf(sc, p, n, &resume));
	if (e == n + 1)
		return scan_suspend(s, DLB_PH_VALUE, resume);
	n = DLB_RELOAD(s->n);
	ls = DLB_RELOAD(s->line_start);
	colon = DLB_RELOAD(s->colon);
	if (e >= n || e >= DLB_HEAD_BYTES || n > DLB_HEAD_BYTES ||
	    colon <= ls || colon > e)
		return scan_done(s, e >= n ? DLB_H_MORE : DLB_H_MALFORMED);
	colon--;

	name_len = colon - ls;
	{
		/* Names compared a word at a time, folded to lower case where the name has
		 * letters; the head buffer is followed by more scratch, so reading 32 bytes
		 * from any line start stays inside the map value. */
		const __u8 *h = sc->head + (ls & DLB_SCAN_MASK);
		__u64 w[4];
		__builtin_memcpy(w, h, 32);
		host_m = name_len == 4 &&
			 ((w[0] | 0x20202020ULL) & 0xffffffffULL) == 0x74736f68ULL;  /* "host" */
		/* "content-length" and "transfer-encoding", the body's framing: letters
		 * folded, the '-' compared as it is */
		cl_m = name_len == 14 && (w[0] | 0x0020202020202020ULL) == 0x2d746e65746e6f63ULL &&
		       ((w[1] | DLB_FOLD) & 0xffffffffffffULL) == 0x6874676e656cULL;
		te_m = name_len == 17 && (w[0] | DLB_FOLD) == 0x726566736e617274ULL &&
		       (w[1] | 0x2020202020202000ULL) == 0x6e69646f636e652dULL &&
		       ((w[2] | DLB_FOLD) & 0xffULL) == 0x67ULL;
		id_m = name_len == s->id_name_len &&
		       ((w[0] | sc->id_fold[0]) & sc->id_mask[0]) == sc->id_name[0] &&
		       ((w[1] | sc->id_fold[1]) & sc->id_mask[1]) == sc->id_name[1] &&
		       ((w[2] | sc->id_fold[2]) & sc->id_mask[2]) == sc->id_name[2] &&
		       ((w[3] | sc->id_fold[3]) & sc->id_mask[3]) == sc->id_name[3];
	}
	if (te_m)
		s->have_te = 1;
	/* The value is kept by dlb_header_value, called by scan_step right after this step
	 * (not from here: one call frame fewer on the verifier's stack budget). */
	s->hv_which = (host_m ? DLB_HV_HOST : 0) | (id_m ? DLB_HV_ID : 0) | (cl_m ? DLB_HV_CL : 0);
	s->hv_from = colon + 1;
	s->hv_end = e;
	s->line_no++;
	if (s->line_no > s->max_lines)
		return scan_done(s, DLB_H_MALFORMED);   /* too many header lines */
	s->line_start = e + 1;
	return scan_suspend(s, DLB_PH_NAME, e + 1);
}

/* One step: the rest of the request line, or one header line, from where the last step
 * stopped. Returns 1 once s->result is set (DLB_H_MORE: the head does not end before
 * n).
 *
 * A global function: the verifier checks it once, on its own, with an unknown CPU
 * index, instead of inside the bpf_loop callback, whose body recent kernels verify
 * again and again until its states converge (with every phase's branches multiplied
 * in each round). This keeps the program's processed instructions a fraction of the
 * verifier's limit on every kernel (tests/xdp: VerifierHeadroom). */
__noinline long dlb_scan_one(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	struct dlb_scan *s = &sc->scan;
	__u32 n = s->n, p = s->pos, phase = s->phase;

	if (n > DLB_HEAD_BYTES || p >= DLB_HEAD_BYTES)
		return scan_done(s, DLB_H_MORE);
	if (phase == DLB_PH_TARGET)
		return scan_target(sc, s, p, n);
	if (phase == DLB_PH_VERSION)
		return scan_version(sc, s, p, n);
	if (phase == DLB_PH_NAME || phase == DLB_PH_VALUE)
		return scan_header(sc, s, phase, p, n);
	return scan_done(s, DLB_H_MALFORMED);
}

/* Steps per bpf_loop call: the call's own cost is shared by four lines. The CPU is read
 * again for each step, so that the compiler does not keep the scratch's addresses
 * across them (its stack would outgrow what the verifier allows). */
#define DLB_SCAN_STEPS_PER_CALL 4

static long scan_step(__u32 idx, __u32 *cpu_arg)
{
#pragma unroll
	for (int i = 0; i < DLB_SCAN_STEPS_PER_CALL; i++) {
		__u32 cpu = *(volatile __u32 *)cpu_arg;

		if (dlb_scan_one(cpu))
			return 1;
		/* most lines are neither Host, identity nor Content-Length: no call */
		if (dlb_scratch[cpu & (DLB_MAX_CPUS - 1)].scan.hv_which && dlb_header_value(cpu))
			return 1;
	}
	return 0;
}

/* Payload bytes [from, to) into sc->head at the same offsets, read from the frame's
 * linear part by 8-byte loads: words from `from` (a multiple of 8) while they end by
 * `to`, then the word that ends at `to` (it may overlap the one before; it starts at 0 at
 * the earliest, since to >= 8). No helper call: bpf_xdp_load_bytes costs several times
 * what the loads of a short head do. 0 when the bytes are not all in the linear part
 * (the caller then copies with bpf_xdp_load_bytes, which also reads fragments), or
 * when the payload starts 16 KiB or more into the frame (the verifier bounds packet
 * offsets). */
#define DLB_COPY_DIRECT(ctx, sc, off, from, to, words)                                   \
	({                                                                               \
		const __u8 *p_ = (const __u8 *)(long)(ctx)->data + ((off) & 0x3fff);     \
		void *end_ = (void *)(long)(ctx)->data_end;                              \
		int ok_ = (to) >= 8 && (off) < 0x4000;                                   \
		_Pragma("unroll")                                                        \
		for (int k_ = (from) / 8; ok_ && k_ < (from) / 8 + (words); k_++) {      \
			if (8 * k_ + 8 > (to))                                           \
				break;                                                   \
			if ((void *)(p_ + 8 * k_ + 8) > end_) {                          \
				ok_ = 0;                                                 \
				break;                                                   \
			}                                                                \
			*(__u64 *)((sc)->head + 8 * k_) = *(const __u64 *)(p_ + 8 * k_);  \
		}                                                                        \
		if (ok_ && ((to) & 7)) {                                                 \
			__u32 last_ = ((to) - 8) & DLB_SCAN_MASK;                        \
			if ((void *)(p_ + last_ + 8) > end_)                             \
				ok_ = 0;                                                 \
			else                                                             \
				*(__u64 *)((sc)->head + last_) = *(const __u64 *)(p_ + last_); \
		}                                                                        \
		ok_;                                                                     \
	})

/* Payload bytes [0, to), to >= DLB_COPY_BLOCK, into sc->head by blocks of
 * DLB_COPY_BLOCK bytes read from the frame's linear part, the last block ending at `to`
 * (it may overlap the one before): one bounds check per block, the words within it
 * unconditional. 0 as DLB_COPY_DIRECT. */
#define DLB_COPY_BLOCK 128

static __always_inline int copy_blocks(struct xdp_md *ctx, struct dlb_scratch *sc, __u32 off,
				       __u32 to)
{
	const __u8 *p = (const __u8 *)(long)ctx->data + (off & 0x3fff);
	void *end = (void *)(long)ctx->data_end;
	__u32 start = 0;

	if (off >= 0x4000 || to < DLB_COPY_BLOCK || to > DLB_HEAD_BYTES)
		return 0;
#pragma clang loop unroll(disable)
	for (int b = 0; b < DLB_HEAD_BYTES / DLB_COPY_BLOCK; b++) {
		const __u8 *q;
		__u8 *d;

		if (start + DLB_COPY_BLOCK > to)
			start = to - DLB_COPY_BLOCK;
		start &= DLB_XDP_SCAN_BYTES - 1;
		q = p + start;
		if ((void *)(q + DLB_COPY_BLOCK) > end)
			return 0;
		d = sc->head + start;
#pragma unroll
		for (int k = 0; k < DLB_COPY_BLOCK / 8; k++)
			((__u64 *)d)[k] = ((const __u64 *)q)[k];
		start += DLB_COPY_BLOCK;
		if (start >= to)
			return 1;
	}
	return 1;
}

/* The head at the payload's start, into sc->scan: the method from the first
 * DLB_METHOD_BYTES bytes, then the rest copied (by loads; bpf_xdp_load_bytes where the
 * frame's linear part does not hold it) and scanned line by line. A global function:
 * verified once, apart from the program. */
__noinline int dlb_scan_head(struct xdp_md *ctx, struct dlb_scratch *sc)
{
	struct dlb_scan *s;
	__u32 cpu, n, off, first;

	if (!ctx || !sc)
		return DLB_H_ERROR;
	s = &sc->scan;
	cpu = s->cpu;
	n = s->n;
	off = s->payload_off;
	if (n < 1 || n > DLB_HEAD_BYTES || off > 0xffff)
		return DLB_H_ERROR;
	if (s->held) {
		/* a held head: this packet's bytes go after it */
		__u32 held = s->held, cnt;
		if (held >= n || held >= DLB_HEAD_BYTES)
			return DLB_H_ERROR;
		cnt = (n - held) & (DLB_XDP_SCAN_BYTES - 1);
		if (cnt == 0 || bpf_xdp_load_bytes(ctx, off, sc->head + (held & (DLB_XDP_SCAN_BYTES - 1)), cnt))
			return DLB_H_ERROR;
		if (scan_method(sc, s, n))
			return s->result;
		bpf_loop(DLB_HEAD_BYTES / DLB_SCAN_STEPS_PER_CALL, scan_step, &cpu, 0);
		return s->result;
	}
	first = n < DLB_METHOD_BYTES ? n : DLB_METHOD_BYTES;
	if (!DLB_COPY_DIRECT(ctx, sc, off, 0, first, DLB_METHOD_BYTES / 8) &&
	    bpf_xdp_load_bytes(ctx, off, sc->head, first))
		return DLB_H_ERROR;
	if (scan_method(sc, s, n))
		return s->result;
	n = DLB_RELOAD(s->n);
	off = DLB_RELOAD(s->payload_off);
	if (n > DLB_HEAD_BYTES || off > 0xffff)
		return DLB_H_ERROR;
	if (n > DLB_METHOD_BYTES) {
		__u32 rest = (n - DLB_METHOD_BYTES) & (DLB_XDP_SCAN_BYTES - 1);
		if (n >= DLB_COPY_BLOCK ? !copy_blocks(ctx, sc, off, n) :
		    !DLB_COPY_DIRECT(ctx, sc, off, DLB_METHOD_BYTES, n,
				     (DLB_COPY_BLOCK - DLB_METHOD_BYTES) / 8)) {
			if (rest == 0 || bpf_xdp_load_bytes(ctx, off + DLB_METHOD_BYTES,
							    sc->head + DLB_METHOD_BYTES, rest))
				return DLB_H_ERROR;
		}
	}
	bpf_loop(DLB_HEAD_BYTES / DLB_SCAN_STEPS_PER_CALL, scan_step, &cpu, 0);
	return s->result;
}

/* Flags of the bytes equal to c, exact in every byte. */
static __always_inline __u64 eq_exact(__u64 w, __u64 c)
{
	__u64 y = w ^ (c * DLB_ONES);
	return ~(((y & DLB_LOW7) + DLB_LOW7) | y) & DLB_HIGHS;
}

/* The searches of dlb_absolute_target, one word per call (a global function, verified
 * once; a loop over the words in one function would be verified once per word): phase
 * DLB_ABS_SCHEME finds "://" (at = 3 + its position, 0 when none), DLB_ABS_AUTHORITY
 * the first '/' or '?', DLB_ABS_PATH the first '?' (at = its position, end when none),
 * from p up to end. 1 once the search ended. */
enum { DLB_ABS_SCHEME = 0, DLB_ABS_AUTHORITY = 1, DLB_ABS_PATH = 2 };

__noinline long dlb_abs_search(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	struct dlb_abs_search *a = &sc->abs;
	__u32 p = a->p, end = a->end, j;
	__u64 w, m;

	if (end > DLB_HEAD_BYTES || p >= end)
		return 1;
	w = head_word(sc, p);
	if (a->phase == DLB_ABS_SCHEME) {
		if (p + 2 >= end)
			return 1;
		/* a ':' with '/' in the next two bytes: the three words' flags aligned */
		m = eq_exact(w, ':') & eq_exact(head_word(sc, p + 1), '/') &
		    eq_exact(head_word(sc, p + 2), '/');
		if (m) {
			j = p + first_flag(m);
			if (j + 2 < end)
				a->at = j + 3;
			return 1;
		}
	} else {
		/* exact at the lowest flag of each, so at the lowest of both */
		m = eq_first(w, '?');
		if (a->phase == DLB_ABS_AUTHORITY)
			m |= eq_first(w, '/');
		if (m) {
			j = p + first_flag(m);
			if (j < end)
				a->at = j;
			return 1;
		}
	}
	a->p = p + 8;
	return 0;
}

static long abs_step(__u32 idx, __u32 *cpu_arg)
{
	return dlb_abs_search(*(volatile __u32 *)cpu_arg) ? 1 : 0;
}

/* One search of dlb_abs_search from p to end; its result (at). */
static __always_inline __u32 abs_search(__u32 cpu, struct dlb_abs_search *a, __u32 phase,
					__u32 p, __u32 end, __u32 none)
{
	a->phase = phase;
	a->p = p;
	a->end = end;
	a->at = none;
	bpf_loop(DLB_HEAD_BYTES / 8 + 1, abs_step, &cpu, 0);
	return a->at;
}

/* The target [sp1, sp2 - 1) of the scanned head in absolute form (RFC 9112 3.2.2), read
 * as the engine reads it (lib/packet/http.cc, ParseTarget): the first "://" after the
 * target's first byte, then the authority up to the first '/' or '?' (it replaces Host),
 * then the path from that '/' up to the next '?', or "/" when there is none. Into
 * sc->abs_*; 1 when the target is in absolute form. Global: verified once, apart from
 * the program. */
__noinline long dlb_absolute_target(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	struct dlb_abs_search *a = &sc->abs;
	__u32 start = sc->scan.sp1, end = sc->scan.sp2, at, p;

	if (start == 0 || end < 2)
		return 0;
	end--;                                    /* the SP after the target */
	if (start >= end || end > DLB_HEAD_BYTES)
		return 0;
	at = abs_search(cpu, a, DLB_ABS_SCHEME, start + 1, end, 0);
	if (at == 0 || at > end)
		return 0;
	sc->abs_host_off = at;
	p = at;
	at = abs_search(cpu, a, DLB_ABS_AUTHORITY, p, end, end);
	if (at > end || p > at || end > DLB_HEAD_BYTES)
		return 0;
	sc->abs_host_len = at - p;
	if (at == end || sc->head[at & DLB_SCAN_MASK] == '?') {
		/* no path: "/", the one of the request line's "HTTP/1.x" */
		sc->abs_path_off = sc->scan.sp2 + 4;
		sc->abs_path_len = 1;
		sc->abs_form = 1;
		return 1;
	}
	p = at;
	at = abs_search(cpu, a, DLB_ABS_PATH, p + 1, end, end);
	if (p > at || at > DLB_HEAD_BYTES)
		return 0;
	sc->abs_path_off = p;
	sc->abs_path_len = at - p;
	sc->abs_form = 1;
	return 1;
}

/* 1 when the path [off, off + len) of the head in the CPU's scratch is its own normal
 * form (lib/dlb/path.h, docs/paths.md): rules match it as it is. The program does not
 * rewrite paths; a target the server would route under another spelling is refused.
 * Global: the byte loop is verified once, apart from the program. */
static long path_step(__u32 idx, __u32 *cpu_arg)
{
	struct dlb_scratch *sc = &dlb_scratch[*(volatile __u32 *)cpu_arg & (DLB_MAX_CPUS - 1)];

	return dlb_path_check_step(&sc->path_check, sc->head + (sc->path_off & DLB_SCAN_MASK),
				   sc->path_len, 0);
}

__noinline long dlb_path_normal(__u32 cpu, __u32 off, __u32 len)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];

	if (off >= DLB_HEAD_BYTES || len > DLB_HEAD_BYTES - off)
		return 0;
	sc->path_off = off;
	sc->path_len = len;
	dlb_path_check_start(&sc->path_check, sc->head + off, len);
	/* one byte (an escape: three) per call, the end as one more */
	bpf_loop(DLB_HEAD_BYTES + 1, path_step, &cpu, 0);
	return sc->path_check.result == 1;
}

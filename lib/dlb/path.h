/* The normalized path of a request target: what rules match, in every form (the C++
 * engine, the XDP program, the agent that compiles rules). Plain C99 without libc, so
 * that BPF C and C++ include the same definition: no allocation, no recursion, every
 * loop bounded by DLB_PATH_MAX_BYTES. docs/paths.md states the meaning; in short:
 *
 *   1. absolute-form "scheme://authority" is dropped; the path ends at '?' or '#';
 *      a target that is neither origin- nor absolute-form ("*", CONNECT's authority)
 *      has the empty path, which no path prefix matches;
 *   2. percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) and of '/' are
 *      decoded (nginx routes "%2F" as a separator: a rule must see what it routes);
 *      every other escape is kept with upper-case hex digits; a '%' without two hex
 *      digits is an error (nginx and most servers answer 400);
 *   3. slashes are merged and dot segments removed (RFC 3986, 5.2.4): ".." above the
 *      root stays at the root; decoded "%2E" counts as '.', as in nginx;
 *   4. with DLB_PATH_FOLD_CASE, ASCII letters are lower-cased (escape digits stay
 *      upper case, so that the result is a fixed point).
 *
 * The result is never longer than the path it came from (or 1 byte, "/", for an
 * absolute-form target without a path), and normalizing it again changes nothing.
 */
#ifndef DLB_PATH_H_
#define DLB_PATH_H_

/* Bytes of a path (after step 1) that are normalized; longer paths are an error, so
 * that a loop over them has a bound the BPF verifier can see. A BPF program may define
 * a smaller bound before including this header. */
#ifndef DLB_PATH_MAX_BYTES
#define DLB_PATH_MAX_BYTES 8192
#endif

#define DLB_PATH_FOLD_CASE 1u

/* dlb_path_normalize's errors (a length is >= 0). */
#define DLB_PATH_ERR_TOO_LONG (-1)   /* the path is longer than DLB_PATH_MAX_BYTES or
                                      * than out_cap */
#define DLB_PATH_ERR_BAD_ESCAPE (-2) /* '%' not followed by two hex digits */

typedef __UINT8_TYPE__ dlb_path_u8;
typedef __UINT32_TYPE__ dlb_path_u32;

static inline int dlb_path_is_alpha(dlb_path_u8 c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int dlb_path_is_unreserved(dlb_path_u8 c) {
	return dlb_path_is_alpha(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* 0..15 for a hex digit, -1 otherwise. */
static inline int dlb_path_hex(dlb_path_u8 c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline dlb_path_u8 dlb_path_fold(dlb_path_u8 c, dlb_path_u32 flags) {
	return ((flags & DLB_PATH_FOLD_CASE) && c >= 'A' && c <= 'Z') ? (dlb_path_u8)(c + 32) : c;
}

/* Where the path of target[0, len) starts (step 1): the offset of its first byte
 * ('/', '?' or '#', or len for an absolute-form target without one), DLB_PATH_NONE
 * for a target without a path, DLB_PATH_ERR_TOO_LONG for an authority longer than
 * DLB_PATH_MAX_BYTES. */
#define DLB_PATH_NONE (-100)
static inline int dlb_path_start(const dlb_path_u8 *target, dlb_path_u32 len) {
	dlb_path_u32 i;
	if (len > 0 && target[0] == '/')
		return 0;
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) then "://" */
	if (len == 0 || !dlb_path_is_alpha(target[0]))
		return DLB_PATH_NONE;
	for (i = 1; i < len && i < DLB_PATH_MAX_BYTES; i++) {
		dlb_path_u8 c = target[i];
		if (!(dlb_path_is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
			break;
	}
	if (i + 3 > len || target[i] != ':' || target[i + 1] != '/' || target[i + 2] != '/')
		return DLB_PATH_NONE;
	i += 3;
	{
		dlb_path_u32 from = i;
		for (; i < len && i - from <= DLB_PATH_MAX_BYTES; i++) {
			if (target[i] == '/' || target[i] == '?' || target[i] == '#')
				return (int)i;
		}
		if (i < len)
			return DLB_PATH_ERR_TOO_LONG;
	}
	return (int)len;
}

static inline dlb_path_u8 dlb_path_hex_digit(dlb_path_u8 d) {
	return (dlb_path_u8)(d < 10 ? '0' + d : 'A' + d - 10);
}

/* Writes the normalized path of the request target target[0, len) to out (at most
 * out_cap bytes; out_cap >= len + 1 always suffices, as does DLB_PATH_MAX_BYTES + 1)
 * and returns its length, 0 for the empty path (no path at all), or a negative
 * DLB_PATH_ERR_*. flags: DLB_PATH_FOLD_CASE or 0. */
static inline int dlb_path_normalize(const dlb_path_u8 *target, dlb_path_u32 len,
				     dlb_path_u8 *out, dlb_path_u32 out_cap, dlb_path_u32 flags) {
	int start = dlb_path_start(target, len);
	dlb_path_u32 p, end, i, steps, o = 0, seg;

	if (start == DLB_PATH_NONE)
		return 0;
	if (start < 0)
		return start;
	p = (dlb_path_u32)start;
	for (i = p; i < len && i - p <= DLB_PATH_MAX_BYTES; i++) {
		if (target[i] == '?' || target[i] == '#')
			break;
	}
	end = i;
	if (end - p > DLB_PATH_MAX_BYTES || out_cap < 1)
		return DLB_PATH_ERR_TOO_LONG;
	out[o++] = '/';
	seg = o;
	if (p < end)
		p++; /* the leading '/' is the one written */
	/* Each step consumes at least one input byte: the bound is never the exit. An
	 * input '/' (or "%2F") closes the segment out[seg, o), and so does the end. */
	for (steps = 0; steps <= DLB_PATH_MAX_BYTES; steps++) {
		int last = p >= end;
		if (!last) {
			dlb_path_u8 c = target[p];
			int keep_escaped = 0;
			if (c == '%') {
				int hi, lo;
				if (p + 2 >= end)
					return DLB_PATH_ERR_BAD_ESCAPE;
				hi = dlb_path_hex(target[p + 1]);
				lo = dlb_path_hex(target[p + 2]);
				if (hi < 0 || lo < 0)
					return DLB_PATH_ERR_BAD_ESCAPE;
				c = (dlb_path_u8)(hi * 16 + lo);
				p += 3;
				keep_escaped = !(dlb_path_is_unreserved(c) || c == '/');
			} else {
				p++;
			}
			if (keep_escaped) {
				if (o + 3 > out_cap)
					return DLB_PATH_ERR_TOO_LONG;
				out[o++] = '%';
				out[o++] = dlb_path_hex_digit(c >> 4);
				out[o++] = dlb_path_hex_digit(c & 15);
				continue;
			}
			if (c != '/') {
				if (o + 1 > out_cap)
					return DLB_PATH_ERR_TOO_LONG;
				out[o++] = dlb_path_fold(c, flags);
				continue;
			}
		}
		/* Close the segment out[seg, o): drop ".", drop ".." with the segment before
		 * it (never the root), drop an empty one (merged slashes), else end it with
		 * '/' unless it is the last. */
		if (o - seg == 1 && out[seg] == '.') {
			o = seg;
		} else if (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
			o = seg;
			if (o > 1) {
				dlb_path_u32 k;
				o--;
				for (k = 0; k < DLB_PATH_MAX_BYTES && o > 1 && out[o - 1] != '/'; k++)
					o--;
			}
		} else if (o > seg && !last) {
			if (o + 1 > out_cap)
				return DLB_PATH_ERR_TOO_LONG;
			out[o++] = '/';
		}
		seg = o;
		if (last)
			break;
	}
	return (int)o;
}

/* The byte at i of a path: a BPF program may define this before including the header
 * to mask the index into a buffer the verifier can bound. */
#ifndef DLB_PATH_BYTE
#define DLB_PATH_BYTE(path, i) ((path)[i])
#endif

/* dlb_path_is_normal's state between steps (a BPF program keeps it in memory and takes
 * one step per bpf_loop call; C++ loops over the steps). */
struct dlb_path_check {
	dlb_path_u32 i;        /* the next byte to look at, 1 .. len (len: the end) */
	dlb_path_u32 seg_len;  /* bytes of the segment so far */
	dlb_path_u32 seg_dots; /* '.' among them */
	int result;            /* -1 while undecided, then 0 or 1 */
};

/* Starts a check of `path` (len bytes); result already set when the first byte decides. */
static inline void dlb_path_check_start(struct dlb_path_check *st, const dlb_path_u8 *path,
				       dlb_path_u32 len) {
	st->i = 1;
	st->seg_len = 0;
	st->seg_dots = 0;
	st->result = -1;
	if (len == 0)
		st->result = 1;
	else if (DLB_PATH_BYTE(path, 0) != '/' || len > DLB_PATH_MAX_BYTES)
		st->result = 0;
}

/* One step of the check: the byte at st->i (an escape's three bytes at once, the end
 * as a final '/'). Returns 1 once st->result is set. */
static inline int dlb_path_check_step(struct dlb_path_check *st, const dlb_path_u8 *path,
				      dlb_path_u32 len, dlb_path_u32 flags) {
	dlb_path_u32 i = st->i;
	dlb_path_u8 c;
	if (st->result >= 0)
		return 1;
	if (i > len || i > DLB_PATH_MAX_BYTES) {
		st->result = 1;
		return 1;
	}
	c = i < len ? DLB_PATH_BYTE(path, i) : '/';
	st->i = i + 1;
	if (c == '/') {
		if ((st->seg_len == 0 && i < len) ||   /* "//" */
		    (st->seg_len == st->seg_dots && (st->seg_dots == 1 || st->seg_dots == 2))) {
			st->result = 0;                /* or a "." or ".." segment */
			return 1;
		}
		st->seg_len = 0;
		st->seg_dots = 0;
		return 0;
	}
	if (c == '?' || c == '#') {
		st->result = 0;
		return 1;
	}
	if (c == '%') {
		int hi, lo;
		dlb_path_u8 h1, h2, v;
		if (i + 2 >= len) {
			st->result = 0;
			return 1;
		}
		h1 = DLB_PATH_BYTE(path, i + 1);
		h2 = DLB_PATH_BYTE(path, i + 2);
		hi = dlb_path_hex(h1);
		lo = dlb_path_hex(h2);
		v = (dlb_path_u8)(hi * 16 + lo);
		/* a bad escape, lower-case hex, or an escape decoding would remove */
		if (hi < 0 || lo < 0 || h1 >= 'a' || h2 >= 'a' || dlb_path_is_unreserved(v) || v == '/') {
			st->result = 0;
			return 1;
		}
		st->i = i + 3;
		st->seg_len += 3;
		return 0;
	}
	if ((flags & DLB_PATH_FOLD_CASE) && c >= 'A' && c <= 'Z') {
		st->result = 0;
		return 1;
	}
	st->seg_len++;
	st->seg_dots += c == '.';
	return 0;
}

/* 1 iff dlb_path_normalize(path, len, ..., flags) would return path itself: starts
 * with '/', no '?' or '#', no empty segment but a final one, no "." or ".." segment,
 * every '%' followed by two upper-case hex digits of a byte that is not decoded, and
 * with DLB_PATH_FOLD_CASE no upper-case letter outside escapes. One pass, no output:
 * the XDP program's test for refusing a non-normal target on a limited route. */
static inline int dlb_path_is_normal(const dlb_path_u8 *path, dlb_path_u32 len, dlb_path_u32 flags) {
	struct dlb_path_check st;
	dlb_path_check_start(&st, path, len);
	while (!dlb_path_check_step(&st, path, len, flags)) {
	}
	return st.result;
}

#endif /* DLB_PATH_H_ */

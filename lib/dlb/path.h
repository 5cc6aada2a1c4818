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

/* 1 iff dlb_path_normalize(path, len, ..., flags) would return path itself: starts
 * with '/', no '?' or '#', no empty segment but a final one, no "." or ".." segment,
 * every '%' followed by two upper-case hex digits of a byte that is not decoded, and
 * with DLB_PATH_FOLD_CASE no upper-case letter outside escapes. One pass, no output:
 * the XDP program's test for refusing a non-normal target on a limited route. */
static inline int dlb_path_is_normal(const dlb_path_u8 *path, dlb_path_u32 len, dlb_path_u32 flags) {
	dlb_path_u32 i, seg_len = 0, seg_dots = 0;
	if (len == 0)
		return 1;
	if (path[0] != '/' || len > DLB_PATH_MAX_BYTES)
		return 0;
	for (i = 1; i <= len && i <= DLB_PATH_MAX_BYTES; i++) {
		dlb_path_u8 c = i < len ? path[i] : '/';
		if (c == '/') {
			if (seg_len == 0 && i < len)
				return 0; /* "//" */
			if (seg_len == seg_dots && (seg_dots == 1 || seg_dots == 2))
				return 0; /* "." or ".." */
			seg_len = 0;
			seg_dots = 0;
			continue;
		}
		if (c == '?' || c == '#')
			return 0;
		if (c == '%') {
			int hi, lo;
			dlb_path_u8 v;
			if (i + 2 >= len)
				return 0;
			hi = dlb_path_hex(path[i + 1]);
			lo = dlb_path_hex(path[i + 2]);
			if (hi < 0 || lo < 0 || (path[i + 1] >= 'a') || (path[i + 2] >= 'a'))
				return 0;
			v = (dlb_path_u8)(hi * 16 + lo);
			if (dlb_path_is_unreserved(v) || v == '/')
				return 0;
			i += 2;
			seg_len += 3;
			continue;
		}
		if ((flags & DLB_PATH_FOLD_CASE) && c >= 'A' && c <= 'Z')
			return 0;
		seg_len++;
		seg_dots += c == '.';
	}
	return 1;
}

#endif /* DLB_PATH_H_ */

/* Device side of the serial link (see el_link.h and docs/protocol.md sections 2-3). */
#include "el_link.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "el_cobs.h"
#include "el_crc32.h"

#define BUSY_FIRST_MS 10u
#define BUSY_EVERY_MS 25u

uint32_t el_max_wire(uint32_t max_payload)
{
    uint32_t body = EL_HEADER_BYTES + max_payload + EL_CRC_BYTES;
    return EL_COBS_MAX(body) + 1;
}

int el_request_error(el_request *r, int code, uint32_t arg0, uint32_t arg1, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_text, sizeof r->err_text, fmt, ap);
    va_end(ap);
    r->err_code = (uint8_t)code;
    r->err_arg0 = arg0;
    r->err_arg1 = arg1;
    return -1;
}

static int known_request(uint8_t t)
{
    switch (t) {
    case EL_HELLO: case EL_PING: case EL_UPLOAD_BEGIN: case EL_UPLOAD_DATA:
    case EL_UPLOAD_COMMIT: case EL_READ_FLASH: case EL_INFER: case EL_LEARN:
    case EL_PULL_BEGIN: case EL_PULL_READ: case EL_TELEMETRY: case EL_RESET:
    case EL_BLOB_BEGIN: case EL_BLOB_DATA: case EL_BLOB_END: case EL_BLOB_GET:
    case EL_BLOB_READ: case EL_SAMPLE: case EL_TEACH: case EL_MODE:
        return 1;
    default:
        return 0;
    }
}

int el_link_init(el_link *l, const el_link_io *io, uint16_t max_payload, uint8_t window,
                 el_arena *arena)
{
    memset(l, 0, sizeof *l);
    l->io = *io;
    l->max_payload = max_payload;
    l->window = window;
    l->version = EL_PROTOCOL_VERSION;
    l->max_wire = el_max_wire(max_payload);
    l->rx = (uint8_t *)el_arena_alloc(arena, "link.rx", 0, l->max_wire);
    l->tx = (uint8_t *)el_arena_alloc(arena, "link.tx", 0, l->max_wire);
    l->cache = (uint8_t *)el_arena_alloc(arena, "link.reply_cache", 0, window * l->max_wire);
    l->reorder = (uint8_t *)el_arena_alloc(arena, "link.reorder", 0, window * l->max_wire);
    if (!l->rx || !l->tx || !l->cache || !l->reorder) return -1;
    el_link_reset(l);
    return 0;
}

void el_link_reset(el_link *l)
{
    l->rx_len = 0;
    l->rx_overflow = 0;
    memset(l->cache_ok, 0, sizeof l->cache_ok);
    memset(l->held_ok, 0, sizeof l->held_ok);
    l->session = 0;
    l->expected = 0;
    l->nak_armed = 1;
    l->last_ahead = 0;
    l->version_burst = 0;
    l->s_max_payload = l->max_payload;
    l->s_window = l->window;
    l->frames_ok = l->frames_bad = l->frames_dup = l->frames_stale = 0;
    l->naks = l->busy = 0;
    l->executing = 0;
}

/* frame body (header | payload) in `body` -> CRC, COBS, delimiter into `wire`; returns bytes */
static uint32_t encode(uint8_t *body, uint32_t n, uint8_t *wire)
{
    uint32_t crc = el_crc32(0, body, n);
    body[n] = (uint8_t)crc;
    body[n + 1] = (uint8_t)(crc >> 8);
    body[n + 2] = (uint8_t)(crc >> 16);
    body[n + 3] = (uint8_t)(crc >> 24);
    uint32_t w = (uint32_t)el_cobs_encode(body, n + 4, wire);
    wire[w] = 0;
    return w + 1;
}

static void header(uint8_t *b, uint8_t version, uint8_t type, uint8_t seq)
{
    b[0] = version;
    b[1] = type;
    b[2] = seq;
    b[3] = EL_FLAG_DEVICE;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ERROR payload into body + 4: code, request, arg0, arg1, text (cut to fit) */
static uint32_t error_payload(const el_link *l, uint8_t *body, const el_request *r)
{
    uint8_t *p = body + EL_HEADER_BYTES;
    uint32_t room = l->s_max_payload > 10 ? l->s_max_payload - 10u : 0;
    uint32_t n = (uint32_t)strlen(r->err_text);
    if (n > room) {
        n = room;
        while (n > 0 && ((uint8_t)r->err_text[n] & 0xC0) == 0x80) n--;   /* whole UTF-8 */
    }
    p[0] = r->err_code;
    p[1] = r->type;
    put32(p + 2, r->err_arg0);
    put32(p + 6, r->err_arg1);
    memcpy(p + 10, r->err_text, n);
    return 10 + n;
}

/* an answer that is not cached (VERSION, NO_SESSION): encoded into rx, whose run is consumed */
static void send_uncached(el_link *l, el_request *r)
{
    header(l->tx, l->version, EL_ERROR, r->seq);
    uint32_t n = error_payload(l, l->tx, r);
    l->io.write(l->io.ctx, l->rx, encode(l->tx, EL_HEADER_BYTES + n, l->rx));
}

static uint32_t now(const el_link *l) { return l->io.now_ms ? l->io.now_ms(l->io.ctx) : 0; }

/* execute one request, send its reply and keep it in the cache slot of its seq */
static void execute(el_link *l, uint8_t type, uint8_t seq, const uint8_t *in, uint32_t n)
{
    el_request r;
    memset(&r, 0, sizeof r);
    r.type = type;
    r.seq = seq;
    r.in = in;
    r.in_len = n;
    r.out = l->tx + EL_HEADER_BYTES;
    r.out_cap = l->s_max_payload;
    r.reply_type = (uint8_t)(type | 0x80);
    l->executing = 1;
    l->exec_busy = 0;
    l->exec_seq = seq;
    l->exec_start = l->last_busy = now(l);
    int len;
    if (!known_request(type))
        len = el_request_error(&r, EL_E_UNKNOWN_TYPE, type, 0, "unknown request type 0x%02x",
                               type);
    else if (type != EL_HELLO && n > l->s_max_payload)
        len = el_request_error(&r, EL_E_BAD_LENGTH, n, l->s_max_payload,
                               "payload of %lu B exceeds the session's %u B", (unsigned long)n,
                               (unsigned)l->s_max_payload);
    else
        len = l->io.execute(l->io.ctx, &r);
    l->executing = 0;
    if (len > (int)r.out_cap)
        len = el_request_error(&r, EL_E_INTERNAL, 0, 0, "reply of %d B exceeds the session's "
                               "%u B", len, (unsigned)r.out_cap);
    uint8_t rtype = r.reply_type;
    if (len < 0) {
        len = (int)error_payload(l, l->tx, &r);
        rtype = EL_ERROR;
    }
    header(l->tx, l->version, rtype, seq);
    uint32_t slot = seq % l->window;
    uint8_t *wire = l->cache + slot * l->max_wire;
    uint32_t w = encode(l->tx, EL_HEADER_BYTES + (uint32_t)len, wire);
    l->cache_len[slot] = (uint16_t)w;
    l->cache_seq[slot] = seq;
    l->cache_ok[slot] = 1;
    l->io.write(l->io.ctx, wire, w);
    if (l->io.after) l->io.after(l->io.ctx, &r);
}

static void uncache(el_link *l, uint8_t seq)
{
    uint32_t slot = seq % l->window;
    if (l->cache_ok[slot] && l->cache_seq[slot] == seq) l->cache_ok[slot] = 0;
}

static void send_nak(el_link *l)
{
    uint8_t body[4 + 9 + 4], wire[EL_COBS_MAX(sizeof body) + 1];
    uint32_t lo = 0, hi = 0;
    for (uint32_t s = 0; s < l->window; s++) {
        if (!l->held_ok[s]) continue;
        uint32_t bit = (uint8_t)(l->held_seq[s] - l->expected) - 1u;
        if (bit < 32) lo |= 1u << bit;
        else if (bit < 64) hi |= 1u << (bit - 32);
    }
    header(body, l->version, EL_NAK, l->expected);
    body[4] = l->expected;
    put32(body + 5, lo);
    put32(body + 9, hi);
    l->naks++;
    l->io.write(l->io.ctx, wire, encode(body, 13, wire));
}

static void on_frame(el_link *l, uint8_t *body, uint32_t n)
{
    uint8_t version = body[0], type = body[1], seq = body[2];
    const uint8_t *payload = body + EL_HEADER_BYTES;
    uint32_t plen = n - EL_HEADER_BYTES - EL_CRC_BYTES;
    if (version != l->version) {
        el_request r;
        memset(&r, 0, sizeof r);
        r.type = type;
        r.seq = seq;
        el_request_error(&r, EL_E_VERSION, l->version, version,
                         "protocol version mismatch: host speaks version %u, this device speaks "
                         "version %u", (unsigned)version, (unsigned)l->version);
        if (!l->version_burst && l->io.log) {
            char line[200];
            snprintf(line, sizeof line, "rejected request 0x%02x: %s", (unsigned)type,
                     r.err_text);
            l->io.log(l->io.ctx, line);
        }
        l->version_burst = 1;
        send_uncached(l, &r);
        return;
    }
    l->version_burst = 0;
    if (type == EL_HELLO) {
        execute(l, type, seq, payload, plen);
        if (l->session) {                     /* a session is open: it starts here */
            uint32_t keep = seq % l->window;
            for (uint32_t s = 0; s < l->window; s++) {
                if (s != keep) l->cache_ok[s] = 0;
                l->held_ok[s] = 0;
            }
            l->expected = (uint8_t)(seq + 1);
            l->nak_armed = 1;
        }
        return;
    }
    if (!l->session) {
        el_request r;
        memset(&r, 0, sizeof r);
        r.type = type;
        r.seq = seq;
        el_request_error(&r, EL_E_NO_SESSION, 0, 0, "no session (device was reset?): send HELLO");
        send_uncached(l, &r);
        return;
    }
    uint8_t ahead = (uint8_t)(seq - l->expected);
    if (ahead == 0) {
        for (;;) {
            execute(l, type, seq, payload, plen);
            uncache(l, (uint8_t)(seq - l->s_window));
            l->expected++;
            l->nak_armed = 1;
            if (!l->session) break;          /* the request rebooted the device */
            uint32_t slot = l->expected % l->window;
            if (!(l->held_ok[slot] && l->held_seq[slot] == l->expected)) break;
            l->held_ok[slot] = 0;
            uint8_t *h = l->reorder + slot * l->max_wire;
            type = h[1];
            seq = h[2];
            payload = h + EL_HEADER_BYTES;
            plen = l->held_len[slot];
        }
        return;
    }
    if (ahead < 128) {
        if (ahead < l->s_window) {
            uint32_t slot = seq % l->window;
            if (!(l->held_ok[slot] && l->held_seq[slot] == seq)) {
                memcpy(l->reorder + slot * l->max_wire, body, EL_HEADER_BYTES + plen);
                l->held_len[slot] = (uint16_t)plen;
                l->held_seq[slot] = seq;
                l->held_ok[slot] = 1;
            }
        }
        if (l->nak_armed || ahead <= l->last_ahead) {
            l->nak_armed = 0;
            l->last_ahead = ahead;
            send_nak(l);
        } else {
            l->last_ahead = ahead;
        }
        return;
    }
    uint32_t slot = seq % l->window;
    if (l->cache_ok[slot] && l->cache_seq[slot] == seq) {
        l->frames_dup++;
        l->io.write(l->io.ctx, l->cache + slot * l->max_wire, l->cache_len[slot]);
    } else {
        l->frames_stale++;
    }
}

static void on_run(el_link *l)
{
    long n = el_cobs_decode(l->rx, l->rx_len);
    if (n < EL_HEADER_BYTES + EL_CRC_BYTES || n > EL_HEADER_BYTES + l->max_payload + EL_CRC_BYTES) {
        l->frames_bad++;
        return;
    }
    uint32_t m = (uint32_t)n - EL_CRC_BYTES;
    uint32_t got = (uint32_t)l->rx[m] | (uint32_t)l->rx[m + 1] << 8 |
                   (uint32_t)l->rx[m + 2] << 16 | (uint32_t)l->rx[m + 3] << 24;
    if (got != el_crc32(0, l->rx, m) || (l->rx[3] & EL_FLAG_DEVICE)) {
        l->frames_bad++;
        return;
    }
    l->frames_ok++;
    on_frame(l, l->rx, (uint32_t)n);
}

void el_link_feed(el_link *l, const uint8_t *data, uint32_t n)
{
    uint32_t max_run = l->max_wire - 1;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b = data[i];
        if (b == 0) {
            if (l->rx_overflow) l->frames_bad++;
            else if (l->rx_len) on_run(l);
            l->rx_len = 0;
            l->rx_overflow = 0;
        } else if (!l->rx_overflow) {
            if (l->rx_len < max_run) l->rx[l->rx_len++] = b;
            else {
                l->rx_overflow = 1;
                l->rx_len = 0;
            }
        }
    }
}

void el_link_keepalive(el_link *l)
{
    if (!l->executing) return;
    uint32_t t = now(l), elapsed = t - l->exec_start;
    if (elapsed < BUSY_FIRST_MS) return;
    if (l->exec_busy && t - l->last_busy < BUSY_EVERY_MS) return;
    l->exec_busy = 1;
    uint8_t body[4 + 4 + 4], wire[EL_COBS_MAX(sizeof body) + 1];
    header(body, l->version, EL_BUSY, l->exec_seq);
    put32(body + 4, elapsed);
    l->last_busy = t;
    l->busy++;
    l->io.write(l->io.ctx, wire, encode(body, 8, wire));
}

/* The device side of the serial link (docs/protocol.md sections 2 and 3): framing, sessions,
 * in-order execution once per sequence number, reply cache, reorder buffer and NAKs, BUSY
 * keep-alives, ERROR frames. Bytes in (el_link_feed), bytes out (the write callback); no I/O
 * and no clock of its own, so the same code runs on a UART, a pty or inside tests.
 *
 * Buffers (from the arena, in the order and sizes of the plan's link layout): link.rx and
 * link.tx (max_wire each), link.reply_cache and link.reorder (window x max_wire each), where
 * max_wire = COBS(4 + max_payload + 4) + 1 for the device's own max_payload.
 */
#ifndef EL_LINK_H
#define EL_LINK_H

#include <stdint.h>

#include "el_arena.h"

#define EL_PROTOCOL_VERSION 2
#define EL_WINDOW_MAX 64
#define EL_HEADER_BYTES 4
#define EL_CRC_BYTES 4
#define EL_FLAG_DEVICE 1

/* message types */
enum {
    EL_HELLO = 0x01, EL_PING = 0x02, EL_UPLOAD_BEGIN = 0x10, EL_UPLOAD_DATA = 0x11,
    EL_UPLOAD_COMMIT = 0x12, EL_READ_FLASH = 0x13, EL_INFER = 0x20, EL_LEARN = 0x21,
    EL_PULL_BEGIN = 0x22, EL_PULL_READ = 0x23, EL_TELEMETRY = 0x30, EL_RESET = 0x31,
    EL_BLOB_BEGIN = 0x40, EL_BLOB_DATA = 0x41, EL_BLOB_END = 0x42, EL_BLOB_GET = 0x43,
    EL_BLOB_READ = 0x44, EL_SAMPLE = 0x45, EL_TEACH = 0x46, EL_MODE = 0x47,
    EL_BUSY = 0x7D, EL_NAK = 0x7E, EL_ERROR = 0x7F
};

/* error codes (section 11) */
enum {
    EL_E_VERSION = 1, EL_E_NO_SESSION = 2, EL_E_UNKNOWN_TYPE = 3, EL_E_BAD_LENGTH = 4,
    EL_E_NO_SPACE = 5, EL_E_BAD_STATE = 6, EL_E_IMAGE_CRC = 7, EL_E_BAD_IMAGE = 8,
    EL_E_NO_MEMORY = 9, EL_E_NO_MODEL = 10, EL_E_BAD_INPUT = 11, EL_E_BAD_PARAM = 12,
    EL_E_RANGE = 13, EL_E_INTERNAL = 14
};

uint32_t el_max_wire(uint32_t max_payload);

/* A request being executed: its payload, and the reply the handler writes.
 * The handler puts the reply payload at `out` (room: out_cap bytes = the session
 * max_payload) and returns its length, or calls el_request_error and returns -1. */
typedef struct {
    uint8_t type, seq;
    const uint8_t *in;
    uint32_t in_len;
    uint8_t *out;
    uint32_t out_cap;
    uint8_t reply_type;      /* default type | 0x80 */
    uint8_t err_code;
    uint32_t err_arg0, err_arg1;
    char err_text[160];
} el_request;

int el_request_error(el_request *r, int code, uint32_t arg0, uint32_t arg1, const char *fmt,
                     ...);

typedef struct el_link el_link;

typedef struct {
    void (*write)(void *ctx, const uint8_t *data, uint32_t n);
    uint32_t (*now_ms)(void *ctx);                  /* for BUSY; may be NULL */
    int (*execute)(void *ctx, el_request *r);       /* the device's handlers */
    void (*after)(void *ctx, const el_request *r);  /* after the reply is queued (reboot) */
    void (*log)(void *ctx, const char *line);
    void *ctx;
} el_link_io;

struct el_link {
    el_link_io io;
    uint16_t max_payload;        /* the device's own */
    uint8_t window;              /* the device's own */
    uint8_t version;
    uint32_t max_wire;
    uint8_t *rx, *tx, *cache, *reorder;
    uint32_t rx_len;
    uint8_t rx_overflow;
    uint16_t cache_len[EL_WINDOW_MAX], held_len[EL_WINDOW_MAX];
    uint8_t cache_seq[EL_WINDOW_MAX], held_seq[EL_WINDOW_MAX];
    uint8_t cache_ok[EL_WINDOW_MAX], held_ok[EL_WINDOW_MAX];
    uint8_t session, expected, nak_armed, last_ahead, version_burst;
    uint16_t s_max_payload;
    uint8_t s_window;
    uint32_t frames_ok, frames_bad, frames_dup, frames_stale, naks, busy;
    uint8_t executing, exec_seq, exec_busy;
    uint32_t exec_start, last_busy;
};

/* take the link buffers from the arena (first, at boot); -1 when they do not fit */
int el_link_init(el_link *l, const el_link_io *io, uint16_t max_payload, uint8_t window,
                 el_arena *arena);

/* power cycle of the link: no session, empty caches, counters zero */
void el_link_reset(el_link *l);

void el_link_feed(el_link *l, const uint8_t *data, uint32_t n);

/* Called by long handlers (between steps): sends a BUSY frame for the executing request when
 * it has run 10 ms and the last BUSY is 25 ms old. */
void el_link_keepalive(el_link *l);

#endif

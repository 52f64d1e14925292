/* The device: request handlers of docs/protocol.md version 2 (see el_device.h). Every handler
 * checks everything before it changes anything, so a failed request leaves the device as it
 * was; the checks run in the order of the reference device (firmware_sim/device.py). */
#include "el_device.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "el_blob.h"
#include "el_crc32.h"
#include "el_lpl_codes.h"

#define SAMPLE_BEGIN 0x01
#define SAMPLE_END 0x04
#define INFER_RESET 0x01
#define ROWS_INT8 0x02
#define ROWS_INT16 0x08
#define LAYER_DEFAULT 0xFF

static uint32_t u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t u32(const uint8_t *p) { return u16(p) | u16(p + 2) << 16; }
static void w16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void w32(uint8_t *p, uint32_t v)
{
    w16(p, v);
    w16(p + 2, v >> 16);
}

#define ERR(code, a0, a1, ...) return el_request_error(r, (code), (uint32_t)(a0), (uint32_t)(a1), __VA_ARGS__)
#define NEED_LEN(n)                                                                       \
    do {                                                                                  \
        if (r->in_len != (n))                                                             \
            ERR(EL_E_BAD_LENGTH, r->in_len, (n), "%s: payload of %lu B, expected %lu B",  \
                el_type_name(r->type), (unsigned long)r->in_len, (unsigned long)(n));     \
    } while (0)

const char *el_type_name(uint8_t t)
{
    switch (t) {
    case EL_HELLO: return "HELLO";
    case EL_PING: return "PING";
    case EL_UPLOAD_BEGIN: return "UPLOAD_BEGIN";
    case EL_UPLOAD_DATA: return "UPLOAD_DATA";
    case EL_UPLOAD_COMMIT: return "UPLOAD_COMMIT";
    case EL_READ_FLASH: return "READ_FLASH";
    case EL_INFER: return "INFER";
    case EL_LEARN: return "LEARN";
    case EL_PULL_BEGIN: return "PULL_BEGIN";
    case EL_PULL_READ: return "PULL_READ";
    case EL_TELEMETRY: return "TELEMETRY";
    case EL_RESET: return "RESET";
    case EL_BLOB_BEGIN: return "BLOB_BEGIN";
    case EL_BLOB_DATA: return "BLOB_DATA";
    case EL_BLOB_END: return "BLOB_END";
    case EL_BLOB_GET: return "BLOB_GET";
    case EL_BLOB_READ: return "BLOB_READ";
    case EL_SAMPLE: return "SAMPLE";
    case EL_TEACH: return "TEACH";
    case EL_MODE: return "MODE";
    default: return "request";
    }
}

static void logf_(el_device *d, const char *line)
{
    if (d->port.log) d->port.log(d->port.ctx, line);
}

/* ---- engine installation ---------------------------------------------------------------- */

/* where the engine's buffers start: after the link's, as the arena rounded them */
static uint32_t link_end(const el_device *d) { return d->link_bytes; }

static void keepalive(void *ctx) { el_link_keepalive(&((el_device *)ctx)->link); }

static void default_config(const el_device *d, el_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = d->cfg.seed;
}

/* the head blob last applied, decoded (it was checked when applied) */
static const el_head_desc *stored_head(el_device *d, el_head_desc *h)
{
    el_blob_error err;
    if (!d->head_len || el_head_decode(d->mem.head_blob, d->head_len, h, &err)) return 0;
    return h;
}

/* lay out an engine for image/desc (keep_net: the running network, learned weights kept);
 * NO_MEMORY (nothing changed) when it does not fit */
static int install(el_device *d, el_request *r, const el_image_desc *desc, const uint8_t *img,
                   uint32_t len, const el_config *cfg, const el_head_desc *head, int keep_net,
                   const char *what)
{
    char text[128];
    uint32_t need = 0, avail = 0;
    uint32_t free_b = d->cfg.ram - link_end(d);
    if (el_engine_measure(desc, img, cfg, head, free_b, text, sizeof text, &need, &avail) < 0)
        ERR(EL_E_NO_MEMORY, need, avail, "%s%s", what, text);
    d->arena.used = link_end(d);
    el_engine_build(&d->eng, desc, img, len, cfg, head, &d->arena, keep_net, &d->c);
    d->eng.keepalive = keepalive;
    d->eng.keepalive_ctx = d;
    d->eng.cost = d->cost;
    d->has_engine = 1;
    return 0;
}

static void boot(el_device *d)
{
    el_slot_info v[2];
    int n = el_flash_valid_slots(&d->flash, v);
    for (int i = 0; i < n; i++) {
        const uint8_t *img = el_flash_data(&d->flash, v[i].slot);
        char line[240];
        if (el_image_check(img, v[i].length, &d->desc, d->load_error, sizeof d->load_error)) {
            snprintf(line, sizeof line, "model in slot %u cannot run: %.150s", v[i].slot,
                     d->load_error);
            logf_(d, line);
            continue;
        }
        el_config cfg;
        el_request r;
        default_config(d, &cfg);
        memset(&r, 0, sizeof r);
        if (install(d, &r, &d->desc, img, v[i].length, &cfg, 0, 0, "")) {
            snprintf(d->load_error, sizeof d->load_error, "model in slot %u cannot run: %.120s",
                     v[i].slot, r.err_text);
            logf_(d, d->load_error);
            continue;
        }
        d->running = v[i].slot;
        d->image = img;
        d->image_len = v[i].length;
        d->stream_cfg = cfg;
        d->load_error[0] = 0;
        return;
    }
}

/* ---- link glue ------------------------------------------------------------------------- */

static void port_write(void *ctx, const uint8_t *p, uint32_t n)
{
    el_device *d = (el_device *)ctx;
    d->port.write(d->port.ctx, p, n);
}

static uint32_t port_now(void *ctx)
{
    el_device *d = (el_device *)ctx;
    return d->port.now_ms ? d->port.now_ms(d->port.ctx) : 0;
}

static void port_log(void *ctx, const char *line) { logf_((el_device *)ctx, line); }

static int execute(void *ctx, el_request *r);

static void after(void *ctx, const el_request *r)
{
    el_device *d = (el_device *)ctx;
    if (r->type == EL_RESET && r->err_code == 0 && r->in_len == 1 && r->in[0] == 1)
        el_device_reboot(d);
}

void el_device_reboot(el_device *d)
{
    d->boots++;
    el_arena_init(&d->arena, d->mem.arena, d->cfg.ram, 4);
    el_link_io io = {port_write, d->port.now_ms ? port_now : 0, execute, after, port_log, d};
    el_link_init(&d->link, &io, d->cfg.max_payload, d->cfg.window, &d->arena);
    d->link_bytes = d->arena.used;
    memset(&d->c, 0, sizeof d->c);
    d->has_engine = d->sample_mode = d->stream_lpl = 0;
    d->running = EL_NO_SLOT;
    d->image = 0;
    d->image_len = 0;
    el_flash_abort(&d->flash);
    d->upload_len = d->upload_crc = 0;
    d->blob_kind = 0;
    d->blob_len = d->blob_crc = d->blob_got = 0;
    d->head_len = d->config_len = d->pull_len = d->snap_len = 0;
    d->load_error[0] = 0;
    boot(d);
}

int el_device_init(el_device *d, const el_device_config *cfg, const el_device_memory *mem,
                   const el_port *port)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->mem = *mem;
    d->port = *port;
    d->cost = el_cost_of(cfg->profile);
    el_flash_port fp = {port->flash_erase, port->flash_program, port->flash_persist, port->ctx};
    el_flash_init(&d->flash, mem->flash, cfg->flash, &fp);
    if (2 * el_max_wire(cfg->max_payload) * (1u + cfg->window) > cfg->ram) return -1;
    el_device_reboot(d);
    return 0;
}

void el_device_feed(el_device *d, const uint8_t *data, uint32_t n)
{
    el_link_feed(&d->link, data, n);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static el_engine *need_engine(el_device *d, el_request *r, int sample)
{
    if (!d->has_engine) {
        el_request_error(r, EL_E_NO_MODEL, 0, 0, "%s",
                         d->load_error[0] ? d->load_error : "no model committed");
        return 0;
    }
    if (d->sample_mode != sample) {
        el_request_error(r, EL_E_BAD_STATE, 0, 0, "%s",
                         d->sample_mode ? "the device is in sample mode: use SAMPLE, TEACH and "
                                          "MODE (streaming INFER/LEARN need a new upload or a "
                                          "reboot)"
                                        : "not in sample mode: send the engine configuration "
                                          "blob first");
        return 0;
    }
    return &d->eng;
}

/* a read of `length` bytes at `offset` of `limit` (READ_FLASH, PULL_READ, BLOB_READ) */
static int slice(el_device *d, el_request *r, uint32_t limit, uint32_t offset, uint32_t length,
                 uint32_t len_offset)
{
    if (length + 4u > d->link.s_max_payload)
        ERR(EL_E_BAD_PARAM, len_offset, length, "a read of %lu B does not fit a reply of %u B",
            (unsigned long)length, (unsigned)d->link.s_max_payload);
    if ((uint64_t)offset + length > limit)
        ERR(EL_E_RANGE, offset + length, limit, "read of %lu B at %lu is outside the %lu B image",
            (unsigned long)length, (unsigned long)offset, (unsigned long)limit);
    return 0;
}

static int read_reply(el_request *r, uint32_t offset, const uint8_t *src, uint32_t length)
{
    w32(r->out, offset);
    memcpy(r->out + 4, src, length);
    return 4 + (int)length;
}

static uint32_t row_len(uint32_t n_in, uint32_t flags)
{
    if (flags & ROWS_INT16) return 2 * n_in;
    return (flags & ROWS_INT8) ? n_in : (n_in + 7) / 8;
}

/* INFER/SAMPLE decode: the rows' length (BAD_LENGTH before anything else) */
static int rows_length(el_request *r)
{
    if (r->in_len < 5)
        ERR(EL_E_BAD_LENGTH, r->in_len, 5, "%s: payload of %lu B, expected at least 5 B",
            el_type_name(r->type), (unsigned long)r->in_len);
    uint32_t n_steps = u16(r->in), n_in = u16(r->in + 2), flags = r->in[4];
    uint32_t want = 5 + n_steps * row_len(n_in, flags);
    if (r->in_len != want)
        ERR(EL_E_BAD_LENGTH, r->in_len, want, "%s: %lu steps of %lu inputs need %lu B, got %lu B",
            el_type_name(r->type), (unsigned long)n_steps, (unsigned long)n_in,
            (unsigned long)(want - 5), (unsigned long)(r->in_len - 5));
    return 0;
}

static int check_rows(el_request *r, const el_engine *e, uint32_t allowed)
{
    uint32_t n_in = u16(r->in + 2), flags = r->in[4];
    if ((flags & ~allowed) || ((flags & ROWS_INT8) && (flags & ROWS_INT16)))
        ERR(EL_E_BAD_PARAM, 4, flags, "flags 0x%02x: reserved bits or int8 and int16 rows "
            "together", (unsigned)flags);
    if (n_in != e->net.n_in)
        ERR(EL_E_BAD_INPUT, n_in, e->net.n_in, "model expects %lu inputs, request has %lu",
            (unsigned long)e->net.n_in, (unsigned long)n_in);
    return 0;
}

static int32_t row_value(const uint8_t *row, uint32_t flags, uint32_t j)
{
    if (flags & ROWS_INT16) return (int16_t)u16(row + 2 * j);
    if (flags & ROWS_INT8) return (int8_t)row[j];
    return (row[j / 8] >> (j % 8)) & 1;
}

/* every input value within the model's signed input_bits (BAD_INPUT: the first one) */
static int check_values(el_request *r, const el_engine *e)
{
    uint32_t n_steps = u16(r->in), n_in = u16(r->in + 2), flags = r->in[4];
    if (!(flags & (ROWS_INT8 | ROWS_INT16))) return 0;       /* bits: 0/1 always fit */
    int32_t hi = (1 << (e->net.input_bits - 1)) - 1, lo = -hi - 1;
    uint32_t rl = row_len(n_in, flags);
    for (uint32_t t = 0; t < n_steps; t++)
        for (uint32_t j = 0; j < n_in; j++) {
            int32_t v = row_value(r->in + 5 + t * rl, flags, j);
            if (v < lo || v > hi)
                ERR(EL_E_BAD_INPUT, v, e->net.input_bits, "input value %ld is outside the "
                    "model's %u-bit input [%ld, %ld]", (long)v, (unsigned)e->net.input_bits,
                    (long)lo, (long)hi);
        }
    return 0;
}

/* decode row t into the engine's `input` buffer */
static void load_row(el_engine *e, const uint8_t *rows, uint32_t flags, uint32_t t)
{
    uint32_t n_in = e->net.n_in, rl = row_len(n_in, flags);
    const uint8_t *row = rows + t * rl;
    if (e->net.input_kind == EL_X_INT16)
        for (uint32_t j = 0; j < n_in; j++) ((int16_t *)e->net.input)[j] = (int16_t)row_value(row, flags, j);
    else
        for (uint32_t j = 0; j < n_in; j++) ((int8_t *)e->net.input)[j] = (int8_t)row_value(row, flags, j);
}

static uint32_t worst_cycles(const el_device *d)
{
    if (!d->has_engine) return 0;
    double total = d->cost->c_step;
    for (uint32_t k = 0; k < d->eng.net.n_layers; k++) {
        const el_layer *L = &d->eng.net.layer[k];
        total += el_layer_cycles(d->cost, L->n_in, L->n_out, -1, 0, L->vT ? L->n_out : 0, 0, 0);
    }
    return (uint32_t)nearbyint(total);
}

/* ---- handlers: link and flash ------------------------------------------------------------ */

static int h_hello(el_device *d, el_request *r)
{
    NEED_LEN(3);
    uint32_t mp = u16(r->in), win = r->in[2];
    if (mp < 128 || mp > 4096)
        ERR(EL_E_BAD_PARAM, 0, mp, "host_max_payload %lu is outside 128..4096", (unsigned long)mp);
    if (win < 1 || win > 64)
        ERR(EL_E_BAD_PARAM, 2, win, "host_window %lu is outside 1..64", (unsigned long)win);
    el_link *l = &d->link;
    l->session = 1;
    l->s_max_payload = (uint16_t)(mp < d->cfg.max_payload ? mp : d->cfg.max_payload);
    l->s_window = (uint8_t)(win < d->cfg.window ? win : d->cfg.window);
    el_slot_info info;
    int act = d->running != EL_NO_SLOT && el_flash_slot_info(&d->flash, d->running, &info);
    uint8_t *o = r->out;
    o[0] = EL_PROTOCOL_VERSION;
    w16(o + 1, EL_KERNEL_VERSION);
    o[3] = 8;
    o[4] = d->has_engine ? d->eng.net.state_bits_max : 32;
    o[5] = 32;
    o[6] = 12;
    w32(o + 7, d->cfg.ram);
    w32(o + 11, d->cfg.flash);
    w32(o + 15, d->flash.slot_size);
    w16(o + 19, l->s_max_payload);
    o[21] = l->s_window;
    w32(o + 22, d->cfg.baud);
    o[26] = act ? info.slot : EL_NO_SLOT;
    w32(o + 27, act ? info.length : 0);
    w32(o + 31, act ? info.crc : 0);
    w32(o + 35, worst_cycles(d));
    uint32_t n = (uint32_t)strlen(d->cfg.profile), room = l->s_max_payload - 40u;
    if (n > room) {
        n = room;
        while (n > 0 && ((uint8_t)d->cfg.profile[n] & 0xC0) == 0x80) n--;
    }
    if (n > 255) n = 255;
    o[39] = (uint8_t)n;
    memcpy(o + 40, d->cfg.profile, n);
    return 40 + (int)n;
}

static int h_ping(el_device *d, el_request *r)
{
    (void)d;
    memcpy(r->out, r->in, r->in_len);
    return (int)r->in_len;
}

static int h_upload_begin(el_device *d, el_request *r)
{
    NEED_LEN(8);
    uint32_t length = u32(r->in), crc = u32(r->in + 4);
    if (length == 0) ERR(EL_E_BAD_PARAM, 0, 0, "an image of 0 B");
    if (length > d->flash.slot_size)
        ERR(EL_E_NO_SPACE, length, d->flash.slot_size, "image of %lu B does not fit a flash slot "
            "of %lu B", (unsigned long)length, (unsigned long)d->flash.slot_size);
    int slot = el_flash_begin(&d->flash, length, d->running);
    if (slot < 0) ERR(EL_E_INTERNAL, 0, 0, "flash erase failed");
    d->upload_len = length;
    d->upload_crc = crc;
    r->out[0] = (uint8_t)slot;
    w32(r->out + 1, d->flash.slot_size);
    return 5;
}

static int h_upload_data(el_device *d, el_request *r)
{
    if (r->in_len == 0) ERR(EL_E_BAD_LENGTH, 0, 1, "UPLOAD_DATA without data");
    el_flash *f = &d->flash;
    if (f->writing == EL_NO_SLOT) ERR(EL_E_BAD_STATE, 0, 0, "UPLOAD_DATA without an open upload");
    if (f->wpos + r->in_len > d->upload_len)
        ERR(EL_E_BAD_STATE, f->wpos, d->upload_len, "upload overruns its announced length: %lu + "
            "%lu > %lu B", (unsigned long)f->wpos, (unsigned long)r->in_len,
            (unsigned long)d->upload_len);
    if (el_flash_write(f, r->in, r->in_len)) ERR(EL_E_INTERNAL, 0, 0, "flash write failed");
    w32(r->out, f->wpos);
    return 4;
}

static int h_upload_commit(el_device *d, el_request *r)
{
    NEED_LEN(0);
    el_flash *f = &d->flash;
    if (f->writing == EL_NO_SLOT) ERR(EL_E_BAD_STATE, 0, 0, "UPLOAD_COMMIT without an open upload");
    if (f->wpos != d->upload_len)
        ERR(EL_E_BAD_STATE, f->wpos, d->upload_len, "upload incomplete: %lu of %lu B received",
            (unsigned long)f->wpos, (unsigned long)d->upload_len);
    int slot = f->writing;
    const uint8_t *img = el_flash_data(f, slot);
    uint32_t got = el_crc32(0, img, d->upload_len);
    if (got != d->upload_crc) {
        el_flash_abort(f);
        ERR(EL_E_IMAGE_CRC, got, d->upload_crc, "image CRC 0x%08lx differs from the announced "
            "0x%08lx; slot not activated", (unsigned long)got, (unsigned long)d->upload_crc);
    }
    el_image_desc desc;
    char why[160];
    if (el_image_check(img, d->upload_len, &desc, why, sizeof why)) {
        el_flash_abort(f);
        ERR(EL_E_BAD_IMAGE, 0, 0, "image rejected, slot not activated: %s", why);
    }
    el_config cfg;
    default_config(d, &cfg);
    uint32_t need = 0, avail = 0;
    if (el_engine_measure(&desc, img, &cfg, 0, d->cfg.ram - link_end(d), why, sizeof why, &need,
                          &avail) < 0) {
        el_flash_abort(f);
        ERR(EL_E_NO_MEMORY, need, avail, "model does not fit the RAM arena, slot not activated: %s",
            why);
    }
    el_slot_info info;
    if (el_flash_commit(f, d->upload_crc, &info)) {
        el_flash_abort(f);
        ERR(EL_E_INTERNAL, 0, 0, "flash write failed, slot not activated");
    }
    d->desc = desc;
    install(d, r, &d->desc, img, info.length, &cfg, 0, 0, "");
    d->running = (uint8_t)slot;
    d->image = img;
    d->image_len = info.length;
    d->stream_cfg = cfg;
    d->load_error[0] = 0;
    d->pull_len = 0;
    d->sample_mode = 0;
    d->config_len = d->head_len = 0;
    d->stream_lpl = 0;
    r->out[0] = info.slot;
    w32(r->out + 1, info.length);
    w32(r->out + 5, info.crc);
    w32(r->out + 9, info.generation);
    return 13;
}

static int h_read_flash(el_device *d, el_request *r)
{
    NEED_LEN(7);
    uint32_t slot = r->in[0], offset = u32(r->in + 1), length = u16(r->in + 5);
    if (slot > 1) ERR(EL_E_BAD_PARAM, 0, slot, "slot %lu does not exist (0 or 1)", (unsigned long)slot);
    el_slot_info info;
    uint32_t limit = el_flash_slot_info(&d->flash, (int)slot, &info) ? info.length : 0;
    if (slice(d, r, limit, offset, length, 5)) return -1;
    return read_reply(r, offset, el_flash_data(&d->flash, (int)slot) + offset, length);
}

/* ---- handlers: streaming mode ------------------------------------------------------------ */

static int h_infer(el_device *d, el_request *r)
{
    if (rows_length(r)) return -1;
    el_engine *e = need_engine(d, r, 0);
    if (!e) return -1;
    if (check_rows(r, e, INFER_RESET | ROWS_INT8 | ROWS_INT16)) return -1;
    uint32_t n_steps = u16(r->in), flags = r->in[4], n_out = e->net.n_out;
    if (n_steps == 0) ERR(EL_E_BAD_INPUT, 0, 1, "INFER of 0 steps");
    uint32_t width = e->net.output_spiking ? (n_out + 7) / 8 : 4 * n_out;
    uint32_t fit = (d->link.s_max_payload - 5u) / width;
    if (n_steps > fit)
        ERR(EL_E_BAD_INPUT, n_steps, fit, "%lu steps of output need %lu B, over the %u B payload "
            "limit (%lu steps fit)", (unsigned long)n_steps, (unsigned long)(n_steps * width + 5),
            (unsigned)d->link.s_max_payload, (unsigned long)fit);
    if (check_values(r, e)) return -1;
    if (flags & INFER_RESET) el_engine_reset_state(e);
    uint8_t *o = r->out;
    w16(o, n_steps);
    w16(o + 2, n_out);
    o[4] = e->net.output_spiking ? 0 : 1;
    int32_t *out = (int32_t *)e->output;            /* a streaming step does not use `output` */
    for (uint32_t t = 0; t < n_steps; t++) {
        load_row(e, r->in + 5, flags, t);
        el_engine_step(e, e->net.input, e->net.input_kind, 0, out);
        uint8_t *row = o + 5 + t * width;
        if (e->net.output_spiking) {
            memset(row, 0, width);
            for (uint32_t i = 0; i < n_out; i++)
                if (out[i]) row[i / 8] |= (uint8_t)(1u << (i % 8));
        } else {
            for (uint32_t i = 0; i < n_out; i++) w32(row + 4 * i, (uint32_t)out[i]);
        }
    }
    return 5 + (int)(n_steps * width);
}

static int check_lpl_layer(el_device *d, el_request *r, uint32_t k, uint32_t act_frac,
                           uint32_t layer_offset, uint32_t block_offset)
{
    if (k >= d->desc.n_layers || !(d->desc.layer[k].flags & EL_IMG_F_SPIKING))
        ERR(EL_E_BAD_PARAM, layer_offset, k, "LPL layer index %lu is not a spiking layer of the "
            "model (%lu layers)", (unsigned long)k, (unsigned long)d->desc.n_layers);
    if (k == 0 && d->desc.input_bits - 1u + act_frac > 15u)
        ERR(EL_E_BAD_PARAM, block_offset, act_frac, "LPL on layer 0 needs input_bits - 1 + "
            "act_frac <= 15, got %u and %lu", (unsigned)d->desc.input_bits,
            (unsigned long)act_frac);
    return 0;
}

static int h_learn(el_device *d, el_request *r)
{
    if (r->in_len < 2) ERR(EL_E_BAD_LENGTH, r->in_len, r->in_len && r->in[0] == 0 ? 2 : 72, "LEARN: payload of %lu B, expected at least 2 B", (unsigned long)r->in_len);
    if (r->in[0] == 0) NEED_LEN(2);
    else NEED_LEN(72);
    el_engine *e = need_engine(d, r, 0);
    if (!e) return -1;
    uint32_t enable = r->in[0], layer = r->in[1];
    if (enable > 1) ERR(EL_E_BAD_PARAM, 0, enable, "enable must be 0 or 1, got %lu", (unsigned long)enable);
    if (enable) {                   /* enable 0 does not use the layer byte */
        uint32_t k = layer == LAYER_DEFAULT ? (uint32_t)el_feature_layer(&d->desc) : layer;
        if (k >= d->desc.n_layers || !(d->desc.layer[k].flags & EL_IMG_F_SPIKING))
            ERR(EL_E_BAD_PARAM, 1, layer, "layer %lu is not a spiking layer of the model (%lu "
                "layers)", (unsigned long)layer, (unsigned long)d->desc.n_layers);
        if (u16(r->in + 2)) ERR(EL_E_BAD_PARAM, 2, u16(r->in + 2), "reserved field must be 0");
        el_config cfg;
        default_config(d, &cfg);
        cfg.seed = u32(r->in + 4);
        uint32_t off, val;
        if (el_lpl_block_parse(r->in + 8, &cfg.lpl[0], &cfg.lpl_var_init[0], &off, &val))
            ERR(EL_E_BAD_PARAM, 8 + off, val, "LEARN blob: byte %lu: LPL block field out of range",
                (unsigned long)(8 + off));
        if (check_lpl_layer(d, r, k, cfg.lpl[0].act_frac, 1, 8)) return -1;
        cfg.n_lpl = 1;
        cfg.lpl_layer[0] = (uint8_t)k;
        if (install(d, r, &d->desc, d->image, d->image_len, &cfg, 0, 1, "")) return -1;
        d->eng.lpl_on = 1;
        d->stream_cfg = cfg;
        d->stream_lpl = 1;
        r->out[0] = 1;
        r->out[1] = (uint8_t)k;
    } else {
        if (d->stream_lpl) {
            el_rng rng = e->rng;
            el_config cfg;
            default_config(d, &cfg);
            if (install(d, r, &d->desc, d->image, d->image_len, &cfg, 0, 1, "")) return -1;
            d->eng.rng = rng;
            d->stream_cfg = cfg;
            d->stream_lpl = 0;
        }
        r->out[0] = 0;
        r->out[1] = LAYER_DEFAULT;
    }
    w32(r->out + 2, d->c.lpl_updates);
    return 6;
}

/* the running network as an image: the committed one with the current weights and zero
 * padding (what the reference writes when it serialises the network again) */
static int h_pull_begin(el_device *d, el_request *r)
{
    NEED_LEN(0);
    if (!d->has_engine)
        ERR(EL_E_NO_MODEL, 0, 0, "%s", d->load_error[0] ? d->load_error : "no model committed");
    el_net_snapshot(&d->eng.net, d->mem.pull);
    d->pull_len = d->image_len;
    w32(r->out, d->pull_len);
    w32(r->out + 4, el_crc32(0, d->mem.pull, d->pull_len));
    return 8;
}

static int h_pull_read(el_device *d, el_request *r)
{
    NEED_LEN(6);
    uint32_t offset = u32(r->in), length = u16(r->in + 4);
    if (slice(d, r, d->pull_len, offset, length, 4)) return -1;
    return read_reply(r, offset, d->mem.pull + offset, length);
}

static int h_telemetry(el_device *d, el_request *r)
{
    NEED_LEN(0);
    uint8_t *o = r->out;
    const el_counters *c = &d->c;
    uint32_t cycles = c->priced_steps ? (uint32_t)nearbyint(c->cycles / c->priced_steps)
                                      : worst_cycles(d);   /* half to even, as Python's round */
    uint32_t v[19] = {c->steps, c->spikes, c->input_spikes, c->output_spikes, c->lpl_updates,
                      c->samples, c->hep_updates, c->hep_nonconverged, c->hep_rejected,
                      d->arena.used, d->arena.high_water, d->arena.size, cycles,
                      d->link.frames_ok, d->link.frames_bad, d->link.frames_dup,
                      d->link.frames_stale, d->link.naks, d->link.busy};
    for (int i = 0; i < 19; i++) w32(o + 4 * i, v[i]);
    o[76] = d->has_engine ? (uint8_t)(d->eng.lpl_on | (d->eng.hep_on << 1)) : 0;
    o[77] = d->running;
    o[78] = d->sample_mode;
    o[79] = 0;
    return 80;
}

static int h_reset(el_device *d, el_request *r)
{
    NEED_LEN(1);
    uint32_t mode = r->in[0];
    if (mode > 1) ERR(EL_E_BAD_PARAM, 0, mode, "unknown reset mode %lu", (unsigned long)mode);
    if (mode == 0 && d->has_engine) el_engine_reset_state(&d->eng);
    r->out[0] = (uint8_t)mode;
    return 1;
}

/* ---- handlers: sample mode --------------------------------------------------------------- */

static int h_blob_begin(el_device *d, el_request *r)
{
    NEED_LEN(9);
    uint32_t kind = r->in[0], length = u32(r->in + 1), crc = u32(r->in + 5);
    if (kind < 1 || kind > 3) ERR(EL_E_BAD_PARAM, 0, kind, "unknown blob kind %lu", (unsigned long)kind);
    if (length == 0) ERR(EL_E_BAD_PARAM, 1, 0, "a blob of 0 B");
    if (length > d->flash.slot_size)
        ERR(EL_E_NO_SPACE, length, d->flash.slot_size, "blob of %lu B is larger than %lu B",
            (unsigned long)length, (unsigned long)d->flash.slot_size);
    d->blob_kind = (uint8_t)kind;
    d->blob_len = length;
    d->blob_crc = crc;
    d->blob_got = 0;
    r->out[0] = (uint8_t)kind;
    w32(r->out + 1, length);
    return 5;
}

static int h_blob_data(el_device *d, el_request *r)
{
    if (r->in_len == 0) ERR(EL_E_BAD_LENGTH, 0, 1, "BLOB_DATA without data");
    if (!d->blob_kind) ERR(EL_E_BAD_STATE, 0, 0, "BLOB_DATA without BLOB_BEGIN");
    if (d->blob_got + r->in_len > d->blob_len)
        ERR(EL_E_BAD_STATE, d->blob_got, d->blob_len, "blob overruns its announced length: %lu + "
            "%lu > %lu B", (unsigned long)d->blob_got, (unsigned long)r->in_len,
            (unsigned long)d->blob_len);
    memcpy(d->mem.stage + d->blob_got, r->in, r->in_len);
    d->blob_got += r->in_len;
    w32(r->out, d->blob_got);
    return 4;
}

static int blob_error(el_request *r, const el_blob_error *err)
{
    return el_request_error(r, err->kind == EL_BLOB_LENGTH ? EL_E_BAD_LENGTH : EL_E_BAD_PARAM,
                            err->arg0, err->arg1, "%s", err->text);
}

static int apply_config(el_device *d, el_request *r, const uint8_t *b, uint32_t len)
{
    el_config cfg;
    el_blob_error err;
    if (el_config_decode(b, len, &cfg, &err)) return blob_error(r, &err);
    if (!d->has_engine)
        ERR(EL_E_NO_MODEL, 0, 0, "%s", d->load_error[0] ? d->load_error : "sample mode needs a committed model");
    for (uint32_t q = 0; q < cfg.n_lpl; q++) {
        uint32_t base = 48 + 72 * q;
        if (check_lpl_layer(d, r, cfg.lpl_layer[q], cfg.lpl[q].act_frac, base, base + 8)) return -1;
    }
    el_head_desc hd;
    const el_head_desc *head = stored_head(d, &hd);
    if (install(d, r, &d->desc, d->image, d->image_len, &cfg, head, 1, "")) return -1;
    memcpy(d->mem.config_blob, b, len);
    d->config_len = len;
    d->sample_mode = 1;
    d->stream_lpl = 0;
    return 0;
}

static int apply_head(el_device *d, el_request *r, const uint8_t *b, uint32_t len)
{
    el_head_desc hd;
    el_blob_error err;
    if (el_head_decode(b, len, &hd, &err)) return blob_error(r, &err);
    if (d->has_engine) {
        int f = el_feature_layer(&d->desc);
        uint32_t n_feat = d->desc.layer[f].n_out + d->eng.net.n_out;
        if (hd.sizes[0] != n_feat)
            ERR(EL_E_BAD_PARAM, 8, hd.sizes[0], "head rejected: head expects %u features, the "
                "model gives %lu", (unsigned)hd.sizes[0], (unsigned long)n_feat);
        if (d->sample_mode) {
            el_config cfg = d->eng.cfg;
            if (install(d, r, &d->desc, d->image, d->image_len, &cfg, &hd, 1, "")) return -1;
        }
    }
    memcpy(d->mem.head_blob, b, len);
    d->head_len = len;
    return 0;
}

static int h_blob_end(el_device *d, el_request *r)
{
    NEED_LEN(0);
    uint32_t kind = d->blob_kind, len = d->blob_got;
    if (!kind) ERR(EL_E_BAD_STATE, 0, 0, "BLOB_END without BLOB_BEGIN");
    d->blob_kind = 0;                                  /* closed whatever happens */
    if (len != d->blob_len)
        ERR(EL_E_BAD_STATE, len, d->blob_len, "blob incomplete: %lu of %lu B",
            (unsigned long)len, (unsigned long)d->blob_len);
    uint32_t got = el_crc32(0, d->mem.stage, len);
    if (got != d->blob_crc)
        ERR(EL_E_IMAGE_CRC, got, d->blob_crc, "blob CRC 0x%08lx differs from the announced "
            "0x%08lx", (unsigned long)got, (unsigned long)d->blob_crc);
    if (kind == 1) {
        if (apply_config(d, r, d->mem.stage, len)) return -1;
    } else if (kind == 2) {
        if (apply_head(d, r, d->mem.stage, len)) return -1;
    } else {
        el_engine *e = need_engine(d, r, 1);
        el_blob_error err;
        if (!e) return -1;
        if (el_weights_apply(e, d->mem.stage, len, &err)) return blob_error(r, &err);
    }
    r->out[0] = (uint8_t)kind;
    w32(r->out + 1, len);
    w32(r->out + 5, got);
    return 9;
}

static int h_blob_get(el_device *d, el_request *r)
{
    NEED_LEN(1);
    uint32_t kind = r->in[0];
    if (kind < 1 || kind > 3) ERR(EL_E_BAD_PARAM, 0, kind, "unknown blob kind %lu", (unsigned long)kind);
    if (kind == 3) {
        el_engine *e = need_engine(d, r, 1);
        if (!e) return -1;
        d->snap_len = el_weights_encode(e, d->mem.blob_snap);
    } else {
        uint32_t n = kind == 1 ? d->config_len : d->head_len;
        if (!n || (kind == 1 && !d->sample_mode))
            ERR(EL_E_BAD_STATE, 0, 0, "no %s blob on the device", kind == 1 ? "config" : "head");
        memcpy(d->mem.blob_snap, kind == 1 ? d->mem.config_blob : d->mem.head_blob, n);
        d->snap_len = n;
    }
    w32(r->out, d->snap_len);
    w32(r->out + 4, el_crc32(0, d->mem.blob_snap, d->snap_len));
    return 8;
}

static int h_blob_read(el_device *d, el_request *r)
{
    NEED_LEN(6);
    uint32_t offset = u32(r->in), length = u16(r->in + 4);
    if (slice(d, r, d->snap_len, offset, length, 4)) return -1;
    return read_reply(r, offset, d->mem.blob_snap + offset, length);
}

static int h_sample(el_device *d, el_request *r)
{
    if (rows_length(r)) return -1;
    el_engine *e = need_engine(d, r, 1);
    if (!e) return -1;
    if (check_rows(r, e, SAMPLE_BEGIN | SAMPLE_END | ROWS_INT8 | ROWS_INT16)) return -1;
    uint32_t n_steps = u16(r->in), flags = r->in[4];
    int begin = (flags & SAMPLE_BEGIN) != 0, end = (flags & SAMPLE_END) != 0;
    if (!begin && !e->open) ERR(EL_E_BAD_STATE, 0, 0, "SAMPLE steps or END without an open sample (BEGIN first)");
    uint32_t done = begin ? 0 : e->T;
    if (done + n_steps > EL_SAMPLE_STEPS_MAX)
        ERR(EL_E_BAD_INPUT, done + n_steps, EL_SAMPLE_STEPS_MAX, "the sample would have %lu steps, "
            "more than 4096", (unsigned long)(done + n_steps));
    if (end && done + n_steps == 0) ERR(EL_E_BAD_STATE, 0, 0, "END of a sample without steps");
    uint32_t n_scores = el_engine_n_scores(e);
    if (end && 16 + 4 * n_scores > d->link.s_max_payload)
        ERR(EL_E_BAD_PARAM, 16 + 4 * n_scores, d->link.s_max_payload, "the result (%lu B) does "
            "not fit the session's %u B", (unsigned long)(16 + 4 * n_scores),
            (unsigned)d->link.s_max_payload);
    if (check_values(r, e)) return -1;
    if (begin) el_engine_begin_sample(e);
    for (uint32_t t = 0; t < n_steps; t++) {
        load_row(e, r->in + 5, flags, t);
        el_engine_step(e, e->net.input, e->net.input_kind, 1, 0);
    }
    uint8_t *o = r->out;
    memset(o, 0, 16);
    if (end) {
        el_result res;
        el_engine_end_sample(e, &res, o + 16);
        o[0] = 1;
        o[1] = res.kind;
        w16(o + 2, (uint32_t)res.prediction);
        w16(o + 4, res.n_scores);
        w32(o + 8, res.spikes);
        w32(o + 12, res.steps);
        return 16 + 4 * (int)res.n_scores;
    }
    w32(o + 12, e->T);
    return 16;
}

static int h_teach(el_device *d, el_request *r)
{
    NEED_LEN(2);
    el_engine *e = need_engine(d, r, 1);
    if (!e) return -1;
    uint32_t label = u16(r->in), n = el_engine_n_scores(e);
    if (label >= n) ERR(EL_E_BAD_INPUT, label, n, "label %lu is not a class index in [0, %lu)", (unsigned long)label, (unsigned long)n);
    if (e->hep_on) {
        if (!e->classified) ERR(EL_E_BAD_STATE, 0, 0, "TEACH needs a classified sample first");
        el_engine_teach(e, label);
    }
    w32(r->out, d->c.hep_updates);
    w32(r->out + 4, d->c.hep_nonconverged);
    w32(r->out + 8, d->c.hep_rejected);
    return 12;
}

static int h_mode(el_device *d, el_request *r)
{
    NEED_LEN(2);
    el_engine *e = need_engine(d, r, 1);
    if (!e) return -1;
    for (uint32_t i = 0; i < 2; i++)
        if (r->in[i] > 1) ERR(EL_E_BAD_PARAM, i, r->in[i], "MODE values are 0 or 1, got %u", (unsigned)r->in[i]);
    if (r->in[0] && !e->cfg.n_lpl) ERR(EL_E_BAD_PARAM, 0, 1, "LPL was not planned for this deployment (no LPL layers)");
    if (r->in[1] && !e->hep_planned) ERR(EL_E_BAD_PARAM, 1, 1, "hEP was not planned for this deployment (no head)");
    e->lpl_on = r->in[0];
    e->hep_on = r->in[1];
    r->out[0] = e->lpl_on;
    r->out[1] = e->hep_on;
    return 2;
}

static int execute(void *ctx, el_request *r)
{
    el_device *d = (el_device *)ctx;
    switch (r->type) {
    case EL_HELLO: return h_hello(d, r);
    case EL_PING: return h_ping(d, r);
    case EL_UPLOAD_BEGIN: return h_upload_begin(d, r);
    case EL_UPLOAD_DATA: return h_upload_data(d, r);
    case EL_UPLOAD_COMMIT: return h_upload_commit(d, r);
    case EL_READ_FLASH: return h_read_flash(d, r);
    case EL_INFER: return h_infer(d, r);
    case EL_LEARN: return h_learn(d, r);
    case EL_PULL_BEGIN: return h_pull_begin(d, r);
    case EL_PULL_READ: return h_pull_read(d, r);
    case EL_TELEMETRY: return h_telemetry(d, r);
    case EL_RESET: return h_reset(d, r);
    case EL_BLOB_BEGIN: return h_blob_begin(d, r);
    case EL_BLOB_DATA: return h_blob_data(d, r);
    case EL_BLOB_END: return h_blob_end(d, r);
    case EL_BLOB_GET: return h_blob_get(d, r);
    case EL_BLOB_READ: return h_blob_read(d, r);
    case EL_SAMPLE: return h_sample(d, r);
    case EL_TEACH: return h_teach(d, r);
    case EL_MODE: return h_mode(d, r);
    default:
        return el_request_error(r, EL_E_UNKNOWN_TYPE, r->type, 0, "unknown request type 0x%02x",
                                (unsigned)r->type);
    }
}

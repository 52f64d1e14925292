/* Device image check, arena layout, network step and snapshot (see el_net.h). */
#include "el_net.h"

#include <stdio.h>
#include <string.h>

#include "el_text.h"

#define NET_HEADER 40u
#define LAYER_HEADER 32u

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (rd16(p + 2) << 16); }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }
static double rdf64(const uint8_t *p)
{
    uint64_t bits = rd64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}
static uint32_t pad4(uint32_t n) { return (n + 3u) & ~3u; }

/* finite and > 0 (NaN fails every comparison) */
static int positive_finite(double v) { return v > 0 && v <= 1.7976931348623157e308; }

#define FAIL(...)                                   \
    do {                                            \
        snprintf(err, err_len, __VA_ARGS__);        \
        return -1;                                  \
    } while (0)

/* a layer name (docs/fixed-point.md section 7): 1..255 bytes of ASCII letters, digits and
 * '_', at least one of them a letter or digit */
static int identifier(const uint8_t *s, uint32_t n)
{
    if (n == 0 || n > 255) return 0;
    int alnum = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        int is_alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!is_alnum && c != '_') return 0;
        alnum |= is_alnum;
    }
    return alnum;
}

int el_image_check(const uint8_t *img, uint32_t len, el_image_desc *d, char *err,
                   uint32_t err_len)
{
    memset(d, 0, sizeof *d);
    if (len < NET_HEADER)
        FAIL("device image truncated: network header needs 40 bytes at offset 0, image has %lu",
             (unsigned long)len);
    if (memcmp(img, "ELQN", 4) != 0) FAIL("bad magic");
    if (rd16(img + 4) != 1)
        FAIL("device image version %lu is not supported (this reader reads version 1)",
             (unsigned long)rd16(img + 4));
    uint32_t n_layers = rd16(img + 6), n_in = rd32(img + 8);
    double in_scale = rdf64(img + 12);
    uint32_t in_bits = img[28], name_len = rd16(img + 30), meta_len = rd32(img + 32);
    uint32_t pos = NET_HEADER;
    if (name_len > len - pos)
        FAIL("device image truncated: network name needs %lu bytes at offset %lu, image has %lu",
             (unsigned long)name_len, (unsigned long)pos, (unsigned long)len);
    if (!el_utf8_valid(img + pos, name_len)) FAIL("device image network name is not UTF-8");
    pos += name_len;
    if (meta_len > len - pos)
        FAIL("device image truncated: metadata needs %lu bytes at offset %lu, image has %lu",
             (unsigned long)meta_len, (unsigned long)pos, (unsigned long)len);
    pos = pad4(pos + meta_len);                 /* the metadata is opaque to a device */
    if (n_layers == 0 || n_layers > EL_MAX_LAYERS)
        FAIL("device image has %lu layers, expected 1..%d", (unsigned long)n_layers,
             EL_MAX_LAYERS);
    if (in_bits < 2 || in_bits > 16) FAIL("device image: input_bits must be 2..16, got %lu",
                                          (unsigned long)in_bits);
    if (!positive_finite(in_scale)) FAIL("device image: input_scale must be > 0");
    d->n_layers = n_layers;
    d->n_in = n_in;
    d->input_bits = (uint8_t)in_bits;
    for (uint32_t k = 0; k < n_layers; k++) {
        el_image_layer *L = &d->layer[k];
        if (pos > len || len - pos < LAYER_HEADER)
            FAIL("device image truncated: layer %lu header needs 32 bytes at offset %lu, "
                 "image has %lu", (unsigned long)k, (unsigned long)pos, (unsigned long)len);
        const uint8_t *h = img + pos;
        uint32_t li = rd32(h), lo = rd32(h + 4), flags = h[8], bits = h[9];
        int ws = (int8_t)h[10], vs = (int8_t)h[11];
        double scale = rdf64(h + 12), lscale = rdf64(h + 20);
        uint32_t lname = rd16(h + 28);
        if (li == 0 || lo == 0 || (uint64_t)li * lo > (1u << 28))
            FAIL("device image layer %lu: implausible size %lux%lu", (unsigned long)k,
                 (unsigned long)lo, (unsigned long)li);
        if ((flags & 0xE0u) || (flags & 0x18u) == 0x18u)
            FAIL("device image layer %lu: flags 0x%02x name no known layer kind (reserved bits "
                 "or two reset modes)", (unsigned long)k, (unsigned)flags);
        if (li > EL_MAX_UNITS || lo > EL_MAX_UNITS)
            FAIL("device image layer %lu: %lux%lu exceeds this firmware's %lu units per layer",
                 (unsigned long)k, (unsigned long)lo, (unsigned long)li,
                 (unsigned long)EL_MAX_UNITS);
        pos += LAYER_HEADER;
        if (lname > len - pos)
            FAIL("device image truncated: layer %lu name needs %lu bytes at offset %lu, image "
                 "has %lu", (unsigned long)k, (unsigned long)lname, (unsigned long)pos,
                 (unsigned long)len);
        if (!identifier(img + pos, lname))
            FAIL("device image layer %lu: name must be a non-empty identifier", (unsigned long)k);
        L->name_off = pos;
        L->name_len = lname;
        pos = pad4(pos + lname);
        uint32_t rec_bytes = (flags & EL_IMG_F_RECURRENT) ? pad4(lo * lo) : 0;
        uint64_t need = (uint64_t)pad4(li * lo) + rec_bytes + ((flags & EL_IMG_F_BIAS) ? 4u * lo : 0)
                        + 4u * lo + pad4(4u * lo);
        if (pos > len || need > len - pos)
            FAIL("device image truncated: layer %lu arrays need %llu bytes at offset %lu, image "
                 "has %lu", (unsigned long)k, (unsigned long long)need, (unsigned long)pos,
                 (unsigned long)len);
        L->w_off = pos;
        pos += pad4(li * lo);
        if (flags & EL_IMG_F_RECURRENT) {
            L->v_off = pos;
            pos += rec_bytes;
        }
        if (flags & EL_IMG_F_BIAS) {
            L->b_off = pos;
            pos += 4 * lo;
        }
        L->t_off = pos;
        pos += 4 * lo;
        L->a_off = pos;
        L->d_off = pos + 2 * lo;
        pos += pad4(4 * lo);
        /* the checks of QLayer */
        if (bits != 16 && bits != 32)
            FAIL("device image layer %lu: state_bits must be one of (16, 32), got %lu",
                 (unsigned long)k, (unsigned long)bits);
        int64_t hi = (int64_t)(((uint64_t)1 << (bits - 1)) - 1), lo_s = -hi - 1;
        for (uint32_t i = 0; i < lo; i++) {
            if (rd16(img + L->a_off + 2 * i) > 4096 || rd16(img + L->d_off + 2 * i) > 4096)
                FAIL("device image layer %lu: alpha and beta must lie in [0, 4096]",
                     (unsigned long)k);
            int64_t t = (int32_t)rd32(img + L->t_off + 4 * i);
            if ((flags & EL_IMG_F_SPIKING) ? (t < 1 || t > hi) : (t < lo_s || t > hi))
                FAIL("device image layer %lu: threshold %lld out of range", (unsigned long)k,
                     (long long)t);
            if (flags & EL_IMG_F_BIAS) {
                int64_t b = (int32_t)rd32(img + L->b_off + 4 * i);
                if (b < lo_s || b > hi)
                    FAIL("device image layer %lu: bias %lld out of range", (unsigned long)k,
                         (long long)b);
            }
        }
        if ((flags & EL_IMG_F_RECURRENT) && !(flags & EL_IMG_F_SPIKING))
            FAIL("device image layer %lu: a non-spiking readout cannot be recurrent",
                 (unsigned long)k);
        if (ws < -31 || ws > 31 || vs < -31 || vs > 31)
            FAIL("device image layer %lu: w_shift and v_shift must lie in -31..31",
                 (unsigned long)k);
        if (!positive_finite(scale) || !positive_finite(lscale))
            FAIL("device image layer %lu: scale and input_scale must be finite floats > 0",
                 (unsigned long)k);
        if (k == 0) {
            double diff = lscale > in_scale ? lscale - in_scale : in_scale - lscale;
            if (!(diff <= 1e-6 * in_scale))
                FAIL("device image: input_scale differs from layer 0 input_scale");
        } else if (lscale != 1.0) {
            FAIL("device image layer %lu: input_scale must be 1 (spike input)", (unsigned long)k);
        }
        if (k > 0) {
            const el_image_layer *P = &d->layer[k - 1];
            if (li != P->n_out)
                FAIL("device image layer %lu expects %lu inputs, got %lu from layer %lu",
                     (unsigned long)k, (unsigned long)li, (unsigned long)P->n_out,
                     (unsigned long)(k - 1));
            if (!(P->flags & EL_IMG_F_SPIKING))
                FAIL("device image layer %lu: only the last layer may be a readout",
                     (unsigned long)(k - 1));
        }
        for (uint32_t j = 0; j < k; j++)
            if (d->layer[j].name_len == lname &&
                memcmp(img + d->layer[j].name_off, img + L->name_off, lname) == 0)
                FAIL("device image: duplicate layer name in layers %lu and %lu",
                     (unsigned long)j, (unsigned long)k);
        L->n_in = li;
        L->n_out = lo;
        L->flags = flags;
        L->state_bits = (uint8_t)bits;
        L->w_shift = (int8_t)ws;
        L->v_shift = (int8_t)vs;
    }
    if (pos != len)
        FAIL("device image has %lu trailing bytes after %lu layers", (unsigned long)(len - pos),
             (unsigned long)n_layers);
    if (d->layer[0].n_in != n_in)
        FAIL("device image header says %lu inputs, first layer has %lu", (unsigned long)n_in,
             (unsigned long)d->layer[0].n_in);
    return 0;
}

#define TAKE(ptr, type, count, name, suffix)                                        \
    do {                                                                            \
        ptr = (type *)el_arena_alloc(arena, name, suffix, (uint32_t)((count) * sizeof(type))); \
        if (!ptr) return -1;                                                        \
    } while (0)

int el_net_load(el_net *net, const el_image_desc *d, const uint8_t *img, uint32_t len,
                el_arena *arena, int batch, int fill)
{
    memset(net, 0, sizeof *net);
    net->desc = *d;
    net->image = img;
    net->image_len = len;
    net->n_layers = d->n_layers;
    net->n_in = d->n_in;
    net->input_bits = d->input_bits;
    net->batch = batch;
    char name[80];
    net->input_kind = d->input_bits > 8 ? EL_X_INT16 : EL_X_INT8;
    if (net->input_kind == EL_X_INT16) TAKE(net->input, int16_t, (uint32_t)batch * d->n_in, "input", 0);
    else TAKE(net->input, int8_t, (uint32_t)batch * d->n_in, "input", 0);
    for (uint32_t k = 0; k < d->n_layers; k++) {
        const el_image_layer *I = &d->layer[k];
        el_layer *L = &net->layer[k];
        uint32_t ni = I->n_in, no = I->n_out;
        uint32_t nl = I->name_len < sizeof name - 1 ? I->name_len : sizeof name - 1;
        memcpy(name, img + I->name_off, nl);
        name[nl] = 0;
        L->n_in = ni;
        L->n_out = no;
        L->spiking = (I->flags & EL_IMG_F_SPIKING) != 0;
        L->recurrent = (I->flags & EL_IMG_F_RECURRENT) != 0;
        L->reset = (I->flags & EL_IMG_F_RESET_ZERO) ? EL_RESET_ZERO
                   : (I->flags & EL_IMG_F_RESET_IMMEDIATE) ? EL_RESET_ZERO_IMMEDIATE
                                                           : EL_RESET_SUBTRACT;
        L->state_bits = I->state_bits;
        L->w_shift = I->w_shift;
        L->v_shift = I->v_shift;
        L->in_binary = k > 0;
        L->in_bits = k > 0 ? 2 : d->input_bits;
        TAKE(L->wT, int8_t, ni * no, name, ".weight");
        if (L->recurrent) TAKE(L->vT, int8_t, no * no, name, ".recurrent");
        if (I->flags & EL_IMG_F_BIAS) TAKE(L->bias, int32_t, no, name, ".bias");
        int32_t *consts;                                 /* alpha, beta (u16), threshold */
        TAKE(consts, int32_t, 2 * no, name, ".consts");
        L->alpha = (uint16_t *)consts;
        L->beta = L->alpha + no;
        L->threshold = consts + no;
        int32_t *state;
        TAKE(state, int32_t, 2 * no * (uint32_t)batch, name, ".state");
        net->cur[k] = state;
        net->mem[k] = state + (size_t)no * batch;
        if (L->spiking) TAKE(net->spk[k], uint8_t, no * (uint32_t)batch, name, ".spikes");
        if (fill) {
            for (uint32_t i = 0; i < no; i++)
                for (uint32_t j = 0; j < ni; j++)
                    L->wT[(size_t)j * no + i] = (int8_t)img[I->w_off + (size_t)i * ni + j];
            if (L->recurrent)
                for (uint32_t i = 0; i < no; i++)
                    for (uint32_t j = 0; j < no; j++)
                        L->vT[(size_t)j * no + i] = (int8_t)img[I->v_off + (size_t)i * no + j];
            if (L->bias)
                for (uint32_t i = 0; i < no; i++)
                    L->bias[i] = (int32_t)rd32(img + I->b_off + 4 * i);
            for (uint32_t i = 0; i < no; i++) {
                L->alpha[i] = (uint16_t)rd16(img + I->a_off + 2 * i);
                L->beta[i] = (uint16_t)rd16(img + I->d_off + 2 * i);
                L->threshold[i] = (int32_t)rd32(img + I->t_off + 4 * i);
            }
        }
        if (arena->base) el_layer_prepare(L);
        if (I->state_bits > net->state_bits_max) net->state_bits_max = I->state_bits;
    }
    net->n_out = d->layer[d->n_layers - 1].n_out;
    net->output_spiking = (d->layer[d->n_layers - 1].flags & EL_IMG_F_SPIKING) != 0;
    return 0;
}

uint32_t el_net_list_len(const el_image_desc *d)
{
    uint32_t m = 0;
    for (uint32_t k = 0; k < d->n_layers; k++) {
        if (d->layer[k].n_in > m) m = d->layer[k].n_in;
        if (d->layer[k].n_out > m) m = d->layer[k].n_out;
    }
    return m;
}

int el_net_take_scratch(el_net *net, el_arena *arena)
{
    uint32_t m = el_net_list_len(&net->desc);
    void *scratch;
    TAKE(scratch, uint8_t, el_step_scratch_bytes(m), "kernel.scratch", 0);
    el_step_lists_bind(&net->lists, scratch, m);
    net->list_len = m;
    return 0;
}

void el_net_reset_state(el_net *net)
{
    for (uint32_t k = 0; k < net->n_layers; k++) {
        uint32_t n = net->layer[k].n_out * (uint32_t)net->batch;
        memset(net->cur[k], 0, 4 * (size_t)n);
        memset(net->mem[k], 0, 4 * (size_t)n);
        if (net->spk[k]) memset(net->spk[k], 0, n);
    }
}

void el_net_step1(el_net *net, int b, const void *x, int x_kind, int binary, int mode,
                  el_clip *clips, el_step_info *info)
{
    el_step_lists s = net->lists;
    int with_values;
    uint32_t n_ev = el_input_events(x, x_kind, net->n_in, binary, mode, s.in, s.val,
                                    &with_values);
    for (uint32_t k = 0; k < net->n_layers; k++) {
        el_layer *L = &net->layer[k];
        size_t at = (size_t)b * L->n_out;
        el_step_info inf;
        el_layer_run(L, &s, n_ev, with_values, net->cur[k] + at, net->mem[k] + at,
                     net->spk[k] ? net->spk[k] + at : 0, clips ? &clips[k] : 0, &inf);
        if (info) info[k] = inf;
        uint16_t *t = s.in;                            /* the spikes are the next input */
        s.in = s.out;
        s.out = t;
        n_ev = inf.spikes;
        with_values = mode == EL_MODE_DENSE;
        if (with_values)
            for (uint32_t q = 0; q < n_ev; q++) s.val[q] = 1;
    }
}

void el_net_step(el_net *net, const void *x, int x_kind, int binary, int mode, el_clip *clips)
{
    size_t width = x_kind == EL_X_INT16 ? 2 : 1;
    for (int b = 0; b < net->batch; b++)
        el_net_step1(net, b, (const uint8_t *)x + (size_t)b * net->n_in * width, x_kind,
                     binary, mode, clips, 0);
}

static void zero(uint8_t *out, uint32_t a, uint32_t b)
{
    if (b > a) memset(out + a, 0, b - a);
}

void el_net_snapshot(const el_net *net, uint8_t *out)
{
    const el_image_desc *d = &net->desc;
    memcpy(out, net->image, net->image_len);
    /* reserved bytes and padding as a writer produces them: zero */
    out[29] = 0;
    zero(out, 36, 40);
    zero(out, 40 + rd16(out + 30) + rd32(out + 32), d->layer[0].name_off - LAYER_HEADER);
    for (uint32_t k = 0; k < d->n_layers; k++) {
        const el_image_layer *L = &d->layer[k];
        uint32_t next = k + 1 < d->n_layers ? d->layer[k + 1].name_off - LAYER_HEADER
                                            : net->image_len;
        zero(out, L->name_off - 2, L->name_off);
        zero(out, L->name_off + L->name_len, L->w_off);
        uint32_t w_end = L->w_off + L->n_in * L->n_out;
        zero(out, w_end, L->v_off ? L->v_off : (L->b_off ? L->b_off : L->t_off));
        if (L->v_off) zero(out, L->v_off + L->n_out * L->n_out, L->b_off ? L->b_off : L->t_off);
        zero(out, L->d_off + 2 * L->n_out, next);
    }
    for (uint32_t k = 0; k < net->n_layers; k++) {
        const el_layer *L = &net->layer[k];
        uint8_t *w = out + net->desc.layer[k].w_off;
        for (uint32_t i = 0; i < L->n_out; i++)
            for (uint32_t j = 0; j < L->n_in; j++)
                w[(size_t)i * L->n_in + j] = (uint8_t)L->wT[(size_t)j * L->n_out + i];
    }
}

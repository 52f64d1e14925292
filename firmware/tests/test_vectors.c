/* Replays the shared test vectors (tests/vectors/) on the C kernel, bit for bit.
 *
 *   el_vectors primitives FILE.npz          rounding, decay, hash32, PRNG, stochastic shift
 *   el_vectors lif IMAGE.bin FILE.npz       LIF network traces (dense, event, int64/int32)
 *   el_vectors lpl FILE.npz CODES.bin       LPL rate stream (reference and fast update)
 *
 * CODES.bin is the layer's 64-byte LPL block (docs/protocol.md section 8.2). Prints one line
 * per check; exit status 0 when all pass. Built for the host and for Cortex-M under QEMU
 * (files through semihosting).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "el_fixed.h"
#include "el_lpl.h"
#include "el_lpl_codes.h"
#include "el_net.h"
#include "npz.h"

static int failures = 0;

#define CHECK(cond, ...)                    \
    do {                                    \
        if (!(cond)) {                      \
            printf("FAIL ");                \
            printf(__VA_ARGS__);            \
            printf("\n");                   \
            failures++;                     \
            return;                         \
        }                                   \
    } while (0)

static const npz_array *need(const npz_file *z, const char *name)
{
    const npz_array *a = npz_get(z, name);
    if (!a) {
        printf("FAIL missing array %s\n", name);
        exit(1);
    }
    return a;
}

static void primitives(const npz_file *z)
{
    const npz_array *x = need(z, "round_shift_x"), *s = need(z, "round_shift_s"),
                    *y = need(z, "round_shift_y");
    for (uint32_t i = 0; i < x->count; i++)
        CHECK(el_round_shift(npz_int(x, i), (int)npz_int(s, i)) == npz_int(y, i),
              "round_shift #%u", (unsigned)i);
    x = need(z, "decay_x"), s = need(z, "decay_d"), y = need(z, "decay_y");
    for (uint32_t i = 0; i < x->count; i++)
        CHECK(el_apply_decay(npz_int(x, i), npz_int(s, i)) == npz_int(y, i), "decay #%u",
              (unsigned)i);
    x = need(z, "hash32_x"), y = need(z, "hash32_y");
    for (uint32_t i = 0; i < x->count; i++)
        CHECK(el_hash32((uint32_t)npz_int(x, i)) == (uint32_t)npz_int(y, i), "hash32 #%u",
              (unsigned)i);
    const npz_array *seed = need(z, "rng_seed"), *req = need(z, "rng_requests"),
                    *draws = need(z, "rng_draws");
    el_rng r = el_rng_init((uint32_t)npz_int(seed, 0));
    uint32_t k = 0;
    for (uint32_t q = 0; q < req->count; q++) {
        uint32_t n = (uint32_t)npz_int(req, q);
        for (uint32_t i = 0; i < n; i++, k++)
            CHECK(el_rng_word(r, i) == (uint32_t)npz_int(draws, k), "rng draw %u", (unsigned)k);
        el_rng_advance(&r, n);
    }
    const npz_array *kc = need(z, "rng_wrap_key_counter"), *wd = need(z, "rng_wrap_draws");
    r.key = (uint32_t)npz_int(kc, 0);
    r.counter = (uint32_t)npz_int(kc, 1);
    for (uint32_t i = 0; i < wd->count; i++)
        CHECK(el_rng_word(r, i) == (uint32_t)npz_int(wd, i), "rng wrap draw %u", (unsigned)i);
    x = need(z, "sshift_x"), s = need(z, "sshift_s"), y = need(z, "sshift_y");
    const npz_array *sr = need(z, "sshift_r");
    for (uint32_t i = 0; i < x->count; i++)
        CHECK(el_stochastic_shift(npz_int(x, i), (int)npz_int(s, i), (uint32_t)npz_int(sr, i))
                  == npz_int(y, i), "stochastic_shift #%u", (unsigned)i);
    x = need(z, "inv_k"), s = need(z, "inv_v"), y = need(z, "inv_y");
    for (uint32_t i = 0; i < x->count; i++)
        CHECK(el_lpl_inv((int64_t)1 << npz_int(x, i), npz_int(s, i)) == npz_int(y, i),
              "lpl inv #%u: 2^%ld / %ld", (unsigned)i, (long)npz_int(x, i), (long)npz_int(s, i));
    printf("ok primitives (%u round_shift, %u decay, %u hash32, %u draws, %u sshift, %u inv)\n",
           (unsigned)need(z, "round_shift_x")->count, (unsigned)need(z, "decay_x")->count,
           (unsigned)need(z, "hash32_x")->count, (unsigned)k, (unsigned)need(z, "sshift_x")->count,
           (unsigned)x->count);
}

static uint8_t arena_mem[1 << 20] __attribute__((aligned(8)));

static void lif_run(const uint8_t *img, uint32_t len, const npz_file *z, int mode, int reference,
                    const char *label)
{
    char err[160];
    el_image_desc desc;
    CHECK(el_image_check(img, len, &desc, err, sizeof err) == 0, "%s: image: %s", label, err);
    const npz_array *x = need(z, "x"), *out = need(z, "output");
    uint32_t T = x->shape[0], B = x->shape[1], n_in = x->shape[2];
    el_arena arena;
    el_arena_init(&arena, arena_mem, sizeof arena_mem, 4);
    el_net net;
    CHECK(el_net_load(&net, &desc, img, len, &arena, (int)B, 1) == 0 &&
              el_net_take_scratch(&net, &arena) == 0, "%s: load: %s", label, arena.error);
    CHECK(n_in == net.n_in, "%s: n_in", label);
    int binary = 1;
    for (uint32_t i = 0; i < x->count; i++)
        if (npz_int(x, i) != 0 && npz_int(x, i) != 1) binary = 0;
    if (mode == EL_MODE_EVENT && !binary) return;
    el_lif_force_reference = reference;
    int16_t *xin = (int16_t *)malloc(2 * (size_t)B * n_in);
    char key[96];
    for (uint32_t t = 0; t < T; t++) {
        for (uint32_t i = 0; i < B * n_in; i++) xin[i] = (int16_t)npz_int(x, t * B * n_in + i);
        el_net_step(&net, xin, EL_X_INT16, binary, mode, 0);
        for (uint32_t k = 0; k < net.n_layers; k++) {
            const el_layer *L = &net.layer[k];
            uint32_t nl = desc.layer[k].name_len;
            char lname[64];
            memcpy(lname, img + desc.layer[k].name_off, nl);
            lname[nl] = 0;
            uint32_t n = L->n_out;
            snprintf(key, sizeof key, "current__%s", lname);
            const npz_array *c = need(z, key);
            snprintf(key, sizeof key, "membrane__%s", lname);
            const npz_array *m = need(z, key);
            const npz_array *sp = 0;
            if (L->spiking) {
                snprintf(key, sizeof key, "spikes__%s", lname);
                sp = need(z, key);
            }
            for (uint32_t i = 0; i < B * n; i++) {
                uint32_t at = t * B * n + i;
                CHECK(net.cur[k][i] == npz_int(c, at) && net.mem[k][i] == npz_int(m, at),
                      "%s: layer %s step %u entry %u: I %ld U %ld, expected %ld %ld", label,
                      lname, (unsigned)t, (unsigned)i, (long)net.cur[k][i], (long)net.mem[k][i],
                      (long)npz_int(c, at), (long)npz_int(m, at));
                if (sp) CHECK(net.spk[k][i] == npz_int(sp, at), "%s: spikes", label);
            }
        }
        uint32_t last = net.n_layers - 1, n = net.n_out;
        for (uint32_t i = 0; i < B * n; i++) {
            int64_t got = net.output_spiking ? net.spk[last][i] : net.mem[last][i];
            CHECK(got == npz_int(out, t * B * n + i), "%s: output step %u", label, (unsigned)t);
        }
    }
    /* the snapshot of an unchanged network is the image itself */
    uint8_t *snap = (uint8_t *)malloc(len);
    el_net_snapshot(&net, snap);
    CHECK(memcmp(snap, img, len) == 0, "%s: snapshot differs from the image", label);
    free(snap);
    free(xin);
    el_lif_force_reference = 0;
    printf("ok %s (T=%u B=%u, %u layers)\n", label, (unsigned)T, (unsigned)B,
           (unsigned)net.n_layers);
}

static uint8_t lpl_state_mem[1 << 16] __attribute__((aligned(8)));
static uint8_t lpl_scratch[1 << 16] __attribute__((aligned(8)));

static void lpl_run(const npz_file *z, const el_lpl_params *p, int32_t var_init, uint32_t seed,
                    int fast, const char *label)
{
    const npz_array *pre = need(z, "pre"), *post = need(z, "post"), *w0 = need(z, "w0"),
                    *w = need(z, "w"), *stats = need(z, "stats"), *gain = npz_get(z, "gain");
    uint32_t T = pre->shape[0], n_in = pre->shape[1], n_out = post->shape[1];
    CHECK(el_lpl_state_bytes(p, n_in, n_out) <= sizeof lpl_state_mem &&
          el_lpl_scratch_bytes(p, n_in, n_out) <= sizeof lpl_scratch, "%s: too large", label);
    el_lpl_state st;
    memset(lpl_state_mem, 0, sizeof lpl_state_mem);
    el_lpl_state_bind(&st, p, n_in, n_out, lpl_state_mem);
    el_lpl_state_init(&st, p, n_in, n_out, var_init);
    int8_t *wT = (int8_t *)malloc((size_t)n_in * n_out);
    for (uint32_t i = 0; i < n_out; i++)
        for (uint32_t j = 0; j < n_in; j++)
            wT[(size_t)j * n_out + i] = (int8_t)npz_int(w0, i * n_in + j);
    int32_t *x = (int32_t *)malloc(4 * (size_t)n_in), *y = (int32_t *)malloc(4 * (size_t)n_out);
    int32_t *g = (int32_t *)malloc(4 * (size_t)n_out);
    el_rng rng = el_rng_init(seed);
    for (uint32_t t = 0; t < T; t++) {
        for (uint32_t j = 0; j < n_in; j++) x[j] = (int32_t)npz_int(pre, t * n_in + j);
        for (uint32_t i = 0; i < n_out; i++) {
            y[i] = (int32_t)npz_int(post, t * n_out + i);
            if (gain) g[i] = (int32_t)npz_int(gain, t * n_out + i);
        }
        el_lpl_stats s;
        el_act xa = {x, EL_ACT_Q}, ya = {y, EL_ACT_Q};
        el_lpl_step(wT, n_in, n_out, xa, ya, gain ? g : 0, &st, p, &rng, lpl_scratch, fast, &s);
        for (uint32_t i = 0; i < n_out; i++)
            for (uint32_t j = 0; j < n_in; j++)
                CHECK(wT[(size_t)j * n_out + i] == npz_int(w, (t * n_out + i) * n_in + j),
                      "%s: step %u weight (%u, %u): %d, expected %ld", label, (unsigned)t,
                      (unsigned)i, (unsigned)j, wT[(size_t)j * n_out + i],
                      (long)npz_int(w, (t * n_out + i) * n_in + j));
        uint32_t got[4] = {s.n_changed, s.n_clipped, s.n_saturated, s.skipped};
        for (int q = 0; q < 4; q++)
            CHECK(got[q] == npz_int(stats, t * 4 + q), "%s: step %u stats[%d] %u, expected %ld",
                  label, (unsigned)t, q, (unsigned)got[q], (long)npz_int(stats, t * 4 + q));
    }
    struct { const char *name; const void *ptr; int bytes; uint32_t n; } f[] = {
        {"state__z_prev", st.z_prev, 2, n_out}, {"state__mean", st.mean, 4, n_out},
        {"state__var", st.var, 4, n_out}, {"state__count", st.count, 4, 1},
        {"state__pre_trace", st.pre_trace, 4, st.pre_trace ? n_in : 0},
        {"state__post_trace", st.post_trace, 4, st.post_trace ? n_out : 0},
        {"state__cov", st.cov, 4, st.cov ? n_out * n_out : 0},
        {"state__target", st.target, 4, st.target ? n_out : 0}};
    for (int q = 0; q < 8; q++) {
        const npz_array *a = need(z, f[q].name);
        CHECK(a->count == f[q].n, "%s: %s has %u entries, expected %u", label, f[q].name,
              (unsigned)f[q].n, (unsigned)a->count);
        for (uint32_t i = 0; i < f[q].n; i++) {
            int64_t v = f[q].bytes == 2 ? ((const int16_t *)f[q].ptr)[i]
                                        : ((const int32_t *)f[q].ptr)[i];
            CHECK(v == npz_int(a, i), "%s: final %s[%u] %ld, expected %ld", label, f[q].name,
                  (unsigned)i, (long)v, (long)npz_int(a, i));
        }
    }
    CHECK(rng.counter == (uint32_t)npz_int(need(z, "rng_counter"), 0), "%s: rng counter", label);
    free(wT); free(x); free(y); free(g);
    printf("ok %s (T=%u, %ux%u)\n", label, (unsigned)T, (unsigned)n_out, (unsigned)n_in);
}

int main(int argc, char **argv)
{
    char err[200];
    if (el_fixed_selftest() != 0) {
        printf("FAIL integer semantics self-test\n");
        return 1;
    }
    if (argc < 3) {
        printf("usage: el_vectors primitives F.npz | lif IMAGE.bin F.npz | lpl F.npz CODES.bin SEED\n");
        return 2;
    }
    npz_file z;
    if (strcmp(argv[1], "primitives") == 0) {
        if (npz_load(&z, argv[2], err, sizeof err)) { printf("FAIL %s\n", err); return 1; }
        primitives(&z);
    } else if (strcmp(argv[1], "lif") == 0 && argc >= 4) {
        size_t len;
        uint8_t *img = read_file(argv[2], &len);
        if (!img) { printf("FAIL cannot read %s\n", argv[2]); return 1; }
        if (npz_load(&z, argv[3], err, sizeof err)) { printf("FAIL %s\n", err); return 1; }
        lif_run(img, (uint32_t)len, &z, EL_MODE_DENSE, 1, "lif dense int64");
        lif_run(img, (uint32_t)len, &z, EL_MODE_DENSE, 0, "lif dense");
        lif_run(img, (uint32_t)len, &z, EL_MODE_EVENT, 0, "lif event");
        lif_run(img, (uint32_t)len, &z, EL_MODE_EVENT, 1, "lif event int64");
        free(img);
    } else if (strcmp(argv[1], "lpl") == 0 && argc >= 5) {
        size_t len;
        uint8_t *codes = read_file(argv[3], &len);
        el_lpl_params p;
        int32_t var_init;
        uint32_t bad_off, bad_val;
        if (!codes || len != EL_LPL_BLOCK_BYTES ||
            el_lpl_block_parse(codes, &p, &var_init, &bad_off, &bad_val)) {
            printf("FAIL bad coefficient block %s\n", argv[3]);
            return 1;
        }
        if (npz_load(&z, argv[2], err, sizeof err)) { printf("FAIL %s\n", err); return 1; }
        uint32_t seed = (uint32_t)strtoul(argv[4], 0, 0);
        lpl_run(&z, &p, var_init, seed, 0, "lpl reference");
        lpl_run(&z, &p, var_init, seed, 1, "lpl fast");
        free(codes);
    } else {
        printf("unknown command %s\n", argv[1]);
        return 2;
    }
    npz_free(&z);
    return failures ? 1 : 0;
}

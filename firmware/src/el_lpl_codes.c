/* The 64-byte LPL block (docs/protocol.md section 8.2), checked field by field in the order
 * of the reference decoder (edgelearn.link.blobs.decode_lpl_block + lpl_codes.check_codes). */
#include "el_lpl_codes.h"

#include <string.h>

static uint32_t u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t u32(const uint8_t *p) { return u16(p) | u16(p + 2) << 16; }

#define BAD(off, val)                   \
    do {                                \
        *bad_offset = (off);            \
        *bad_value = (uint32_t)(val);   \
        return -1;                      \
    } while (0)

enum { F_DECORR = 1, F_HOM = 2, F_OWN_TARGET = 4 };

int el_lpl_block_parse(const uint8_t *b, el_lpl_params *p, int32_t *var_init_q,
                       uint32_t *bad_offset, uint32_t *bad_value)
{
    memset(p, 0, sizeof *p);
    uint32_t A = b[0], E = b[1], P = b[2], rounding = b[3], flags = b[4];
    int32_t w_lo = (int8_t)b[5], w_hi = (int8_t)b[6];
    uint32_t warmup = u32(b + 8), xi_q = u32(b + 12);
    int32_t var_q = (int32_t)u32(b + 16), target_q = (int32_t)u32(b + 20);
    if (u32(b + 60)) BAD(60, u32(b + 60));
    if (rounding > 1) BAD(3, rounding);
    if (flags & ~(uint32_t)(F_DECORR | F_HOM | F_OWN_TARGET)) BAD(4, flags);
    el_code *c[9] = {&p->mean, &p->var, &p->pre, &p->post, &p->lam, &p->pred, &p->lam_decorr,
                     &p->lam_hom, &p->eta};
    for (uint32_t i = 0; i < 9; i++) {
        const uint8_t *q = b + 24 + 4 * i;
        if (q[3]) BAD(24 + 4 * i + 3, q[3]);
        if (u16(q) == 0 && q[2] != 0) BAD(24 + 4 * i + 2, q[2]);
        c[i]->k = (int32_t)u16(q);
        c[i]->s = q[2];
    }
    if (A > 14) BAD(0, A);
    if (E > 12) BAD(1, E);
    if (P < 1 || P > 32) BAD(2, P);
    if (A + P > 32) BAD(2, P);
    if (warmup > (1u << 30)) BAD(8, warmup);
    if (xi_q < 1 || xi_q > 0x7FFFFFFFu) BAD(12, xi_q);
    if (var_q < 0) BAD(16, var_q);
    if (w_lo > w_hi) BAD(6, w_hi);
    for (uint32_t i = 0; i < 9; i++) {
        int optional = i == 2 || i == 3 || (i >= 4 && i <= 7);
        uint32_t lo_s = i < 4 ? 11 : 0, hi_s = i < 4 ? 48 : 63;
        if (c[i]->k == 0) {
            if (!optional) BAD(24 + 4 * i, 0);
            continue;
        }
        if (c[i]->k < 2048 || c[i]->k > 4096) BAD(24 + 4 * i, c[i]->k);
        if ((uint32_t)c[i]->s < lo_s || (uint32_t)c[i]->s > hi_s) BAD(24 + 4 * i + 2, c[i]->s);
    }
    p->decorr = (flags & F_DECORR) != 0;
    p->hom = (flags & F_HOM) != 0;
    p->stores_target = (flags & F_OWN_TARGET) != 0;
    if (p->lam_decorr.k && !p->decorr) BAD(48, p->lam_decorr.k);
    if ((p->lam_hom.k != 0) != p->hom) BAD(52, p->lam_hom.k);
    if (p->stores_target && !p->hom) BAD(4, 0);
    if (p->stores_target && warmup < 1) BAD(8, warmup);
    int fixed_target = p->hom && !p->stores_target;
    if (target_q < 0 || (!fixed_target && target_q != 0)) BAD(20, target_q);
    if (b[7] > 6 || b[7] > A) BAD(7, b[7]);            /* epoch_log2: 0..6 and <= act_frac */
    p->act_frac = (uint8_t)A;
    p->ema_frac = (uint8_t)E;
    p->factor_frac = (uint8_t)P;
    p->rounding = (uint8_t)rounding;
    p->warmup = warmup;
    p->xi_q = xi_q;
    p->rate_target_q = target_q;
    p->w_lo = w_lo;
    p->w_hi = w_hi;
    p->epoch_log2 = b[7];
    *var_init_q = var_q;
    return 0;
}

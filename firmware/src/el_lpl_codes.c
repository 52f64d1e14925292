/* The LPL coefficient block (see el_lpl_codes.h). */
#include "el_lpl_codes.h"

#include <string.h>

static int32_t rd32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}
static int64_t rd64(const uint8_t *p)
{
    return (int64_t)((uint64_t)(uint32_t)rd32(p) | ((uint64_t)(uint32_t)rd32(p + 4) << 32));
}

int el_lpl_codes_parse(const uint8_t *b, uint32_t len, el_lpl_params *p, int32_t *var_init_q)
{
    if (len != EL_LPL_CODES_BYTES || memcmp(b, "LPLC", 4) != 0) return -1;
    memset(p, 0, sizeof *p);
    p->act_frac = b[4];
    p->ema_frac = b[5];
    p->factor_frac = b[6];
    p->rounding = b[7];
    p->warmup = (uint32_t)rd32(b + 8);
    p->xi_q = rd64(b + 12);
    el_code *c[9] = {&p->mean, &p->var, &p->pre, &p->post, &p->lam, &p->pred, &p->lam_decorr,
                     &p->lam_hom, &p->eta};
    for (int i = 0; i < 9; i++) {
        c[i]->k = rd32(b + 20 + 8 * i);
        c[i]->s = rd32(b + 24 + 8 * i);
    }
    p->decorr = b[92];
    p->hom = b[93];
    p->stores_target = b[94];
    p->rate_target_q = rd64(b + 96);
    p->w_lo = rd32(b + 104);
    p->w_hi = rd32(b + 108);
    if (var_init_q) *var_init_q = rd32(b + 112);
    if (p->act_frac > 14 || p->ema_frac > 12 || p->factor_frac < 1 ||
        p->act_frac + p->factor_frac > 32 || p->rounding > 1 || p->xi_q < 1 ||
        p->warmup > (1u << 30) || p->w_lo < -128 || p->w_hi > 127 || p->w_lo > p->w_hi)
        return -1;
    for (int i = 0; i < 9; i++) {          /* shifts the integer code can take without UB */
        if (c[i]->k < 0 || c[i]->k > 4096 || c[i]->s > (i < 4 ? 48 : 62) || c[i]->s < (i < 4 ? 0 : -16))
            return -1;
    }
    if (p->mean.k == 0 || p->var.k == 0 || p->eta.k == 0) return -1;
    int sh = p->act_frac + p->ema_frac + p->eta.s - p->factor_frac;
    if (sh < -16 || sh > 62) return -1;
    return 0;
}


/* The 116-byte LPL coefficient block the host sends (edgelearn.kernels.lpl_codes.pack_codes;
 * layout in firmware/README.md): integer codes only, little-endian. */
#ifndef EL_LPL_CODES_H
#define EL_LPL_CODES_H

#include <stdint.h>

#include "el_lpl.h"

#define EL_LPL_CODES_BYTES 116u

/* 0 and the parameters (and var_init in Q.(2A+E)) when the block is valid, else -1 */
int el_lpl_codes_parse(const uint8_t *b, uint32_t len, el_lpl_params *p, int32_t *var_init_q);

#endif

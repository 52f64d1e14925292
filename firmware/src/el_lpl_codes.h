/* The 64-byte LPL block a host sends (docs/protocol.md section 8.2): the integer constants of
 * one LPL-adapted layer, little-endian; a device converts no float. */
#ifndef EL_LPL_CODES_H
#define EL_LPL_CODES_H

#include <stdint.h>

#include "el_lpl.h"

#define EL_LPL_BLOCK_BYTES 64u

/* 0 and the parameters (and var_init in Q.(2A+E)) when the block is valid; else -1 with the
 * byte offset of the first invalid field in the block and its value (as u32) */
int el_lpl_block_parse(const uint8_t *b, el_lpl_params *p, int32_t *var_init_q,
                       uint32_t *bad_offset, uint32_t *bad_value);

#endif

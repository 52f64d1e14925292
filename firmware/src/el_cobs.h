/* COBS (Cheshire & Baker 1999) as docs/protocol.md section 2: no 0x00 in the output, one
 * overhead byte per started 254 bytes. */
#ifndef EL_COBS_H
#define EL_COBS_H

#include <stddef.h>
#include <stdint.h>

/* encoded length bound of n bytes */
#define EL_COBS_MAX(n) ((n) + (n) / 254 + 1)

/* encode n bytes into out (EL_COBS_MAX(n) bytes available); returns the encoded length */
size_t el_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/* decode n bytes in place (the output is never longer); returns the decoded length, or -1
 * for a malformed run (a zero byte, or a block running past the end) */
long el_cobs_decode(uint8_t *buf, size_t n);

#endif

/* CRC-32 as zlib.crc32 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF); incremental:
 * crc = el_crc32(0, a, n); crc = el_crc32(crc, b, m) equals the CRC of a|b. */
#ifndef EL_CRC32_H
#define EL_CRC32_H

#include <stddef.h>
#include <stdint.h>

uint32_t el_crc32(uint32_t crc, const void *data, size_t n);

#endif

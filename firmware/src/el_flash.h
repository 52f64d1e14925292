/* Two model slots (A/B) in flash, docs/protocol.md section 12.
 *
 * Flash of `size` bytes: two equal regions; each a 64-byte slot header (magic "ELSL",
 * generation u32, length u32, crc u32, header_crc u32 = CRC-32 of the 16 bytes before it,
 * 0xFF padding) and `slot_size = size / 2 - 64` bytes of data. A slot is valid when magic and
 * header CRC match, length <= slot_size and the CRC-32 of its data equals crc; generations
 * compare as serial numbers (RFC 1982), equal ones put slot 0 first. An upload erases the slot
 * that is not running and appends; the commit writes the header (the one atomic commit point)
 * with generation = newest valid + 1 (1 when none). Erased flash reads 0xFF.
 *
 * The memory is mapped (reads are plain loads); writes and erases go through the port
 * (el_flash_port) so a real part can program pages; `persist` runs after each commit (the host
 * build writes its flash file there). */
#ifndef EL_FLASH_H
#define EL_FLASH_H

#include <stdint.h>

#define EL_SLOT_HEADER 64u
#define EL_NO_SLOT 0xFF

typedef struct {
    int (*erase)(void *ctx, uint32_t offset, uint32_t n);            /* to 0xFF */
    int (*program)(void *ctx, uint32_t offset, const uint8_t *data, uint32_t n);
    int (*persist)(void *ctx);                                       /* may be NULL */
    void *ctx;
} el_flash_port;

typedef struct {
    uint8_t slot;
    uint32_t generation, length, crc;
} el_slot_info;

typedef struct {
    uint8_t *mem;
    uint32_t size, region, slot_size;
    el_flash_port port;
    uint8_t writing;          /* slot being uploaded, or EL_NO_SLOT */
    uint32_t wpos, wlen;
} el_flash;

void el_flash_init(el_flash *f, uint8_t *mem, uint32_t size, const el_flash_port *port);
int el_flash_slot_info(const el_flash *f, int slot, el_slot_info *info);   /* 1 if valid */
/* valid slots newest first; returns how many (0..2) */
int el_flash_valid_slots(const el_flash *f, el_slot_info out[2]);
const uint8_t *el_flash_data(const el_flash *f, int slot);
/* erase the slot that is not `running` (EL_NO_SLOT: by the rule of section 12) */
int el_flash_begin(el_flash *f, uint32_t length, int running);
int el_flash_write(el_flash *f, const uint8_t *data, uint32_t n);
int el_flash_commit(el_flash *f, uint32_t crc, el_slot_info *info);
void el_flash_abort(el_flash *f);
int el_serial_newer(uint32_t a, uint32_t b);

#endif

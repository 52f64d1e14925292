#include "el_flash.h"

#include <string.h>

#include "el_crc32.h"

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int el_serial_newer(uint32_t a, uint32_t b)
{
    uint32_t d = a - b;
    return d >= 1 && d < 0x80000000u;
}

void el_flash_init(el_flash *f, uint8_t *mem, uint32_t size, const el_flash_port *port)
{
    f->mem = mem;
    f->size = size;
    f->region = size / 2;
    f->slot_size = f->region - EL_SLOT_HEADER;
    f->port = *port;
    f->writing = EL_NO_SLOT;
    f->wpos = f->wlen = 0;
}

int el_flash_slot_info(const el_flash *f, int slot, el_slot_info *info)
{
    const uint8_t *h = f->mem + (uint32_t)slot * f->region;
    if (memcmp(h, "ELSL", 4) != 0 || el_crc32(0, h, 16) != rd32(h + 16)) return 0;
    uint32_t len = rd32(h + 8);
    if (len > f->slot_size) return 0;
    if (el_crc32(0, h + EL_SLOT_HEADER, len) != rd32(h + 12)) return 0;
    info->slot = (uint8_t)slot;
    info->generation = rd32(h + 4);
    info->length = len;
    info->crc = rd32(h + 12);
    return 1;
}

int el_flash_valid_slots(const el_flash *f, el_slot_info out[2])
{
    el_slot_info a, b;
    int va = el_flash_slot_info(f, 0, &a), vb = el_flash_slot_info(f, 1, &b);
    if (va && vb) {
        if (el_serial_newer(b.generation, a.generation)) {
            out[0] = b;
            out[1] = a;
        } else {
            out[0] = a;
            out[1] = b;
        }
        return 2;
    }
    if (va) out[0] = a;
    if (vb) out[0] = b;
    return va + vb;
}

const uint8_t *el_flash_data(const el_flash *f, int slot)
{
    return f->mem + (uint32_t)slot * f->region + EL_SLOT_HEADER;
}

int el_flash_begin(el_flash *f, uint32_t length, int running)
{
    int slot;
    if (running != EL_NO_SLOT) {
        slot = 1 - running;
    } else {
        el_slot_info v[2];
        int n = el_flash_valid_slots(f, v);
        slot = n ? 1 - v[0].slot : 0;
    }
    if (length > f->slot_size) return -1;
    if (f->port.erase(f->port.ctx, (uint32_t)slot * f->region, f->region)) return -1;
    f->writing = (uint8_t)slot;
    f->wpos = 0;
    f->wlen = length;
    return slot;
}

int el_flash_write(el_flash *f, const uint8_t *data, uint32_t n)
{
    if (f->writing == EL_NO_SLOT || n > f->wlen - f->wpos) return -1;
    uint32_t at = (uint32_t)f->writing * f->region + EL_SLOT_HEADER + f->wpos;
    if (f->port.program(f->port.ctx, at, data, n)) return -1;
    f->wpos += n;
    return 0;
}

int el_flash_commit(el_flash *f, uint32_t crc, el_slot_info *info)
{
    if (f->writing == EL_NO_SLOT || f->wpos != f->wlen) return -1;
    int slot = f->writing;
    el_slot_info v[2];
    int n = el_flash_valid_slots(f, v);
    uint32_t gen = n ? v[0].generation + 1u : 1u;
    uint8_t hdr[20], *base = f->mem + (uint32_t)slot * f->region, before[20];
    memcpy(hdr, "ELSL", 4);
    wr32(hdr + 4, gen);
    wr32(hdr + 8, f->wlen);
    wr32(hdr + 12, crc);
    wr32(hdr + 16, el_crc32(0, hdr, 16));
    memcpy(before, base, sizeof before);
    if (f->port.program(f->port.ctx, (uint32_t)slot * f->region, hdr, sizeof hdr)) return -1;
    if (f->port.persist && f->port.persist(f->port.ctx)) {
        f->port.program(f->port.ctx, (uint32_t)slot * f->region, before, sizeof before);
        return -1;
    }
    f->writing = EL_NO_SLOT;
    if (!el_flash_slot_info(f, slot, info)) return -1;
    return 0;
}

void el_flash_abort(el_flash *f) { f->writing = EL_NO_SLOT; }

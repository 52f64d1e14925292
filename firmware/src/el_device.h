/* A board running the edgelearn device protocol, version 2 (docs/protocol.md): link, flash
 * slots, the engine in streaming and sample mode, telemetry. Bytes in (el_device_feed),
 * bytes out through the port; no I/O of its own, so the same code runs in the host process,
 * on the Cortex-M build and in tests.
 *
 * Memory, all given by the port (nothing is allocated): the RAM arena (link buffers first,
 * then the engine), the flash (two slots), and five areas outside the arena (host memory on
 * the host build, the NOLOAD .flash_area section on Cortex-M): three of a slot's size (the
 * blob being received, the head blob last applied, the PULL_READ snapshot), the config blob
 * last applied (2,048 B; BLOB_GET kind 1 copies the config, kind 2 the head, kind 3 encodes
 * the weights) and that BLOB_GET snapshot, which BLOB_READ reads (the larger of a slot and
 * the RAM arena). A board would keep these in spare flash sectors.
 */
#ifndef EL_DEVICE_H
#define EL_DEVICE_H

#include <stdint.h>

#include "el_arena.h"
#include "el_cycles.h"
#include "el_engine.h"
#include "el_flash.h"
#include "el_link.h"

#define EL_KERNEL_VERSION 1

typedef struct {
    void (*write)(void *ctx, const uint8_t *data, uint32_t n);
    uint32_t (*now_ms)(void *ctx);          /* may be NULL (then no BUSY frames) */
    void (*log)(void *ctx, const char *line);
    int (*flash_erase)(void *ctx, uint32_t offset, uint32_t n);
    int (*flash_program)(void *ctx, uint32_t offset, const uint8_t *data, uint32_t n);
    int (*flash_persist)(void *ctx);        /* may be NULL */
    void *ctx;
} el_port;

typedef struct {
    uint32_t ram, flash;                    /* bytes */
    uint16_t max_payload;                   /* 128..4096 */
    uint8_t window;                         /* 1..64 */
    uint32_t baud, seed;
    const char *profile;
} el_device_config;

typedef struct {
    uint8_t *arena, *flash, *stage, *head_blob, *config_blob, *pull, *blob_snap;
} el_device_memory;

typedef struct {
    el_device_config cfg;
    el_device_memory mem;
    el_port port;
    const el_cost *cost;
    el_arena arena;
    uint32_t link_bytes;                    /* the link's buffers at the arena's start */
    el_flash flash;
    el_link link;
    el_counters c;
    el_engine eng;
    uint8_t has_engine, sample_mode, stream_lpl, running;
    el_image_desc desc;
    const uint8_t *image;
    uint32_t image_len;
    el_config stream_cfg;                   /* streaming mode: seed (+ the LEARN entry) */
    uint32_t upload_len, upload_crc;
    uint8_t blob_kind;
    uint32_t blob_len, blob_crc, blob_got;
    uint32_t head_len, config_len, pull_len, snap_len;
    uint8_t reboot_pending;
    uint32_t boots;
    char load_error[160];
} el_device;

/* set up and boot (returns -1 when even the link buffers do not fit the RAM) */
int el_device_init(el_device *d, const el_device_config *cfg, const el_device_memory *mem,
                   const el_port *port);

/* power cycle: RAM state lost, flash kept; boots the newest runnable slot */
void el_device_reboot(el_device *d);

void el_device_feed(el_device *d, const uint8_t *data, uint32_t n);

/* what a request of `type` needs to be decoded, for tests and tools */
const char *el_type_name(uint8_t type);

#endif

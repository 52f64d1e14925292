/* The C firmware on QEMU mps2-an385 (Cortex-M3) / mps2-an386 (Cortex-M4F): the protocol on
 * UART0 (CMSDK APB UART at 0x40004000), a 1 ms SysTick for BUSY keep-alives, RAM and flash as
 * static arrays sized at build time.
 *
 *   EL_RAM        bytes of the RAM arena (default 256 KiB)
 *   EL_FLASH      bytes of model flash, two slots (default 1 MiB)
 *   EL_PROFILE    board profile name announced in HELLO (default "cortex-m3-qemu")
 *
 * The model flash and the blob areas (which a board keeps in spare flash sectors) are placed in
 * the `.flash_area` section (PSRAM at 0x21000000 in the linker script), outside the RAM the
 * firmware uses, so `arm-none-eabi-size -A` reports RAM and flash apart. Flash contents survive
 * a RESET reboot (the device reboots in place); QEMU's power-on zeroes them (no valid slot).
 */
#include <stdint.h>
#include <string.h>

#include "el_cobs.h"
#include "el_device.h"

#ifndef EL_RAM
#define EL_RAM (256u * 1024u)
#endif
#ifndef EL_FLASH
#define EL_FLASH (1024u * 1024u)
#endif
#ifndef EL_PROFILE
#define EL_PROFILE "cortex-m3-qemu"
#endif
#define EL_SLOT (EL_FLASH / 2u - 64u)

#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x00))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x04))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x08))
#define UART_INTCLEAR (*(volatile uint32_t *)(UART0 + 0x0C))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10))
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPU_HZ 25000000u

static uint8_t arena[EL_RAM] __attribute__((aligned(8)));
static uint8_t flash[EL_FLASH] __attribute__((section(".flash_area"), aligned(8)));
static uint8_t stage[EL_SLOT] __attribute__((section(".flash_area")));
static uint8_t head_blob[EL_SLOT] __attribute__((section(".flash_area")));
static uint8_t config_blob[2048] __attribute__((section(".flash_area")));
static uint8_t pull[EL_SLOT] __attribute__((section(".flash_area")));
static uint8_t blob_snap[EL_SLOT > EL_RAM ? EL_SLOT : EL_RAM] __attribute__((section(".flash_area")));
static el_device dev;
static volatile uint32_t ms;

/* the link this board announces in HELLO: largest request payload and window */
#define MAX_PAYLOAD 1024u
#define WINDOW 8u

/* received bytes: a ring filled by the UART0 RX interrupt, emptied by the main loop. It holds
 * one window of requests (docs/protocol.md, "Flow control"): WINDOW frames of at most
 * el_max_wire(MAX_PAYLOAD) bytes, delimiter included (8 x 1,038 = 8,304 B), and one spare
 * byte (a full ring keeps one slot empty). Smaller, a window of large requests overflows it
 * whenever the main loop is slower than the line, and every resent window overflows it again. */
#define RING (WINDOW * (EL_COBS_MAX(EL_HEADER_BYTES + MAX_PAYLOAD + EL_CRC_BYTES) + 1u) + 1u)
static volatile uint8_t ring[RING];
static volatile uint32_t ring_head, ring_tail;

void el_port_systick(void) { ms++; }

/* Clear the interrupt first, then drain: a byte that arrives during the drain raises a new
 * interrupt (clearing after the drain could swallow it and leave RXFULL set with no interrupt
 * pending: the UART would never deliver another byte). */
void el_port_uart0_rx(void)
{
    UART_INTCLEAR = 2u;
    while (UART_STATE & 2u) {
        uint8_t b = (uint8_t)UART_DATA;
        uint32_t next = (ring_head + 1u) % RING;
        if (next != ring_tail) {       /* a full ring drops the byte: the host retransmits */
            ring[ring_head] = b;
            ring_head = next;
        }
    }
}

static void uart_write(void *ctx, const uint8_t *d, uint32_t n)
{
    (void)ctx;
    for (uint32_t i = 0; i < n; i++) {
        while (UART_STATE & 1u) {
        }
        UART_DATA = d[i];
    }
}

static uint32_t now_ms(void *ctx)
{
    (void)ctx;
    return ms;
}

static int flash_erase(void *ctx, uint32_t off, uint32_t n)
{
    (void)ctx;
    memset(flash + off, 0xFF, n);
    return 0;
}

static int flash_program(void *ctx, uint32_t off, const uint8_t *d, uint32_t n)
{
    (void)ctx;
    memcpy(flash + off, d, n);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    UART_BAUDDIV = 16;
    UART_CTRL = 3u | 8u;                             /* TX, RX and the RX interrupt */
    NVIC_ISER0 = 1u;                                 /* IRQ 0: UART0 RX */
    SYST_RVR = CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u;                                   /* processor clock, interrupt, enable */
    if (el_fixed_selftest()) return 3;
    el_device_config cfg = {EL_RAM, EL_FLASH, MAX_PAYLOAD, WINDOW, 0, 1, EL_PROFILE};
    el_device_memory mem = {arena, flash, stage, head_blob, config_blob, pull, blob_snap};
    el_port port = {uart_write, now_ms, 0, flash_erase, flash_program, 0, 0};
    if (el_device_init(&dev, &cfg, &mem, &port)) return 4;
    uint8_t buf[256];
    for (;;) {
        uint32_t n = 0;
        while (n < sizeof buf && ring_tail != ring_head) {
            buf[n++] = ring[ring_tail];
            ring_tail = (ring_tail + 1u) % RING;
        }
        if (n) {
            el_device_feed(&dev, buf, n);
            continue;
        }
        __asm__ volatile("cpsid i");
        if (UART_STATE & 2u) el_port_uart0_rx();  /* a byte without its interrupt: take it */
        else if (ring_tail == ring_head) __asm__ volatile("wfi");   /* until a byte or a tick */
        __asm__ volatile("cpsie i");
    }
}

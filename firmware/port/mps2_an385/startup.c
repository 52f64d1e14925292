/* Start-up for QEMU mps2-an385/an386: vector table, .data/.bss set-up, main, exit.
 * With EL_SEMIHOSTING (test harnesses), semihosting (newlib librdimon) carries the command
 * line, stdio, files and the exit status to the host (QEMU -semihosting-config
 * enable=on,target=native); the UART firmware is built without it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);

#ifdef EL_SEMIHOSTING
/* the command line QEMU passes through semihosting (SYS_GET_CMDLINE, -semihosting-config
 * ...,arg=...), split at spaces into argv */
static char cmdline[512];
static char *args[16];

static int semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int command_line(char ***argv)
{
    struct { char *buf; int len; } block = {cmdline, (int)sizeof cmdline - 1};
    int argc = 0;
    if (semihost(0x15, &block) == 0) {
        cmdline[block.len < (int)sizeof cmdline ? block.len : (int)sizeof cmdline - 1] = 0;
        for (char *p = cmdline; *p && argc < 15;) {
            while (*p == ' ') *p++ = 0;
            if (!*p) break;
            args[argc++] = p;
            while (*p && *p != ' ') p++;
        }
    }
    args[argc] = 0;
    *argv = args;
    return argc;
}
#else
static int command_line(char ***argv)
{
    static char *none[1];
    *argv = none;
    return 0;
}
#endif

void Reset_Handler(void);
static void fault(void);
void el_port_systick(void);
void el_port_uart0_rx(void);

static void fault(void)
{
    exit(99);
}

__attribute__((weak)) void el_port_systick(void) {}
__attribute__((weak)) void el_port_uart0_rx(void) {}

__attribute__((section(".vectors"), used)) static void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, fault, fault, fault, fault, fault, 0, 0, 0, 0,
    fault, fault, 0, fault, el_port_systick, el_port_uart0_rx,
};

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
    /* Cortex-M4F: enable the FPU (CP10, CP11 full access) */
    *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20);
#endif
#ifdef EL_SEMIHOSTING
    initialise_monitor_handles();
#endif
    char **argv;
    int argc = command_line(&argv);
    exit(main(argc, argv));
}

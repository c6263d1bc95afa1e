/*
 * conf_default.c - the default configuration compiled into the binary
 *
 * The text of etc/impetus.conf is pulled into .rodata by the assembler's
 * .incbin directive, so there is no generator script and no copy to keep
 * in sync: editing etc/impetus.conf and rebuilding this file is enough.
 * IMPETUS_SOURCE_DIR (set by CMake to the source root; pass
 * -DIMPETUS_SOURCE_DIR=\"$PWD\" when compiling by hand) locates the file.
 * A trailing NUL is appended so the text is a C string.
 *
 * State: constant data. Failure: a missing file fails the build.
 */
#include "config/config.h"

#ifndef IMPETUS_SOURCE_DIR
#error "IMPETUS_SOURCE_DIR must name the source root (CMake defines it)"
#endif

__asm__(
	"	.pushsection .rodata\n"
	"	.balign 16\n"
	"	.type impetus_conf_default_text, %object\n"
	"impetus_conf_default_text:\n"
	"	.incbin \"" IMPETUS_SOURCE_DIR "/etc/impetus.conf\"\n"
	"	.byte 0\n"
	"	.size impetus_conf_default_text, . - impetus_conf_default_text\n"
	"	.popsection\n");

/* Defined by the assembly above; file-local, so no name can clash. */
extern const char impetus_conf_default_text[] __attribute__((visibility("hidden")));

const char *conf_default_text(void)
{
	return impetus_conf_default_text;
}

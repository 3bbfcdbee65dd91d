/* bcryptprimitives.dll for running cic-conduit.exe under wine 8, which lacks this DLL: Rust's
 * standard library takes its random numbers from ProcessPrng. This one fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036), which wine has. Test support only: Windows has
 * the real DLL.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c \
 *       bcryptprimitives.def -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

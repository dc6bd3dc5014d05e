#include "kiln/kiln.h"

extern "C" const char* kiln_version(void) { return KILN_VERSION_STRING; }

/* inventory: being written (issue 4) */
#include "mysync/strategy.h"

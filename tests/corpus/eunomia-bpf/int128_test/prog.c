#include "prog.h"


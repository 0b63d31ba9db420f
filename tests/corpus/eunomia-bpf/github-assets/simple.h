#ifndef _SIMPLE_H
#define _SIMPLE_H


#endif

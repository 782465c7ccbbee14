/* alarm.h - runs rooms' onAlarm when their alarm (kept in storage) is due,
 * waking unloaded rooms and surviving restarts. */
#ifndef LP_ALARM_H
#define LP_ALARM_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct room;

void alarm_start(struct worker *w);
void alarm_stop(struct worker *w);
/* Re-arms the timer for the earliest alarm (after a commit that changed one). */
void alarm_reschedule(struct worker *w);

#endif

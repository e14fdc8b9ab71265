// The mode object for a mode name.
import type { Rooms } from '../rooms.ts';
import { CoLocatedMode } from './co-located.ts';
import { DisaggregatedMode } from './disaggregated.ts';
import type { ModeInfo } from './info.ts';
import type { ServingMode } from './mode.ts';
import { UnifiedMode } from './unified.ts';

export function createMode(info: ModeInfo, rooms: Rooms): ServingMode {
  switch (info.name) {
    case 'semi-pd':
    case 'nexus':
      return new CoLocatedMode(info, rooms);
    case 'disaggregated':
      return new DisaggregatedMode(info, rooms);
    case 'unified':
      return new UnifiedMode(info, rooms);
  }
}

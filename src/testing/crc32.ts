/** The simulator and harness use the production checksum binding. */
export { fullCrc32 } from '../io/crc32.js';

export { raceAbort, throwIfAborted } from './abort.js';
export { type AccessAction, AccessList, type AccessRule, type Cidr, parseCidr } from './access.js';
export {
  type Endpoint,
  formatEndpoint,
  type HostPort,
  type IpFamily,
  ipFamily,
  isHostLike,
  isHostPort,
  isPortNumber,
  type LookupAddress,
  type LookupCallback,
  type LookupFunction,
  type LookupOptions,
  MAX_PAYLOAD_IPV4,
  MAX_PAYLOAD_IPV6,
  maxPayload,
  parseHostPort,
  parsePort,
  type ResolveOptions,
  resolveHost,
} from './address.js';
export type { ReceivedBatch } from './batch.js';
export {
  type BenchClientOptions,
  type BenchProgress,
  type BenchResult,
  benchParams,
  type LiveInterval,
  type RttFigures,
  runBench,
} from './bench/client.js';
export type { DelayFigures, IntervalFigures, StreamFigures } from './bench/receiver.js';
export { BenchServer, type BenchServerOptions, type ServerEvent, startBenchServer } from './bench/server.js';
export type { BenchParams } from './bench/session.js';
export type { ReceiverReport } from './bench/stream.js';
export * from './errors.js';
export {
  type ByteFormatter,
  createByteFormatter,
  createFormatter,
  escapeInto,
  escapeText,
  type Formatter,
  type FormatterOptions,
  formatTimestamp,
  hexDump,
  hexDumpInto,
  hexDumpIntoJs,
  type JsonRecord,
  OUTPUT_FORMATS,
  type OutputFormat,
  parseOutputFormat,
  toJsonRecord,
  UNSAFE_CODE_POINTS,
  type UnsafeCodePointRange,
} from './format.js';
export {
  decodeHexLine,
  FRAMINGS,
  type FramedRecords,
  Framer,
  type Framing,
  parseFraming,
} from './framing.js';
export { createSequencedBatch, MIN_SEQUENCED_SIZE, numberDatagrams, readSequence } from './generate.js';
export {
  DelayModel,
  DISTRIBUTIONS,
  type Distribution,
  type DistributionName,
  namedDistribution,
  normalQuantile,
  paretoQuantile,
  parseDistTable,
} from './impair/delay.js';
export {
  checkImpairments,
  DEFAULT_QUEUE_LIMIT,
  type DropCause,
  Impairer,
  type Impairments,
  type Outcome,
  type SlotOptions,
} from './impair/impairer.js';
export {
  burstLossParameters,
  fourStateLoss,
  gilbertElliottLoss,
  type LossModel,
  type LossSpec,
  lossModel,
  randomLoss,
} from './impair/loss.js';
export { type Random, randomSeed, seededRandom } from './impair/random.js';
export { checkScenario, type Phase, phaseAt, type Scenario } from './impair/scenario.js';
export { LinkTrace, OPPORTUNITY_BYTES, PathTrace } from './impair/trace.js';
export { type InterfaceRef, isMulticast, resolveInterface } from './interfaces.js';
export { socketDrops } from './kernel.js';
export { nativeUnavailableReason } from './native.js';
export { BatchWriter, type BatchWriterOptions, type ByteSink, type FlushOptions } from './output.js';
export { Pacer, type PacerOptions } from './pacer.js';
export { type FlowEntry, FlowTable } from './proxy/flows.js';
export { PcapWriter } from './proxy/pcap.js';
export {
  createProxy,
  DEFAULT_FLOW_IDLE_TIMEOUT,
  DEFAULT_MAX_FLOWS,
  type Direction,
  type DirectionStats,
  type Policy,
  type PolicyDatagram,
  type PolicyDecision,
  type ProxyDropCause,
  type ProxyEvent,
  type ProxyOptions,
  UdpProxy,
} from './proxy/proxy.js';
export { BoundedQueue } from './queue.js';
export { SourceRateLimiter, type SourceRateLimiterOptions } from './ratelimit.js';
export { Requester, type RequestOptions, request } from './request.js';
export {
  defaultScheduler,
  nodeTimerSource,
  type ScheduledCall,
  Scheduler,
  type SchedulerOptions,
  type TimerSource,
} from './scheduler.js';
export {
  type BindOptions,
  type ConsumeOptions,
  checkSize,
  type Datagram,
  DEFAULT_HIGH_WATER_MARK,
  type MessagesOptions,
  type OpenOptions,
  type OutgoingDatagram,
  openUdpSocket,
  type ReceiveOptions,
  type SocketState,
  type SocketType,
  UdpSocket,
  type UdpSocketOptions,
} from './socket.js';
export type { Offloads, RingStats, TransportKind } from './transport.js';

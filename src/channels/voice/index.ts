/**
 * The voice channel: sentence-level consumers of a run (`sentencesOf`, `SentencePuller`, and
 * `sentenceViewOf` — sentences then the run's end, what `/ws` and gRPC `VoiceService` serve),
 * text-to-speech (`TtsEngine`, the embedded `FliteTts`, `OpenAiSpeechTts`), a voice WebSocket with
 * barge-in that keeps what was heard (`VoiceChannel`, `voiceWsRoutes`), output rails
 * (`withOutputRails`), an ACE Agent plugin consumer (`acePluginAction`) and the SSE sentence route.
 * Speech pauses on a possible interruption and resumes after a false one (`pause` / `resume` on
 * the socket, or `controlVoiceSession` behind the HTTP and gRPC controls).
 * @module
 */

export { sentencesOf, encodeSentenceJson, encodeSentenceSse, resolveSentencesOptions } from './sentences.ts';
export type { EventSourceLike, SentenceEvent, SentencesOptions } from './sentences.ts';
export { parseSegmenterOptions, sentenceGate, sentenceViewOf } from './sentence-view.ts';
export type { SentenceViewEvent, SentenceViewItem, WireSegmenterOptions } from './sentence-view.ts';
export { SentencePuller } from './puller.ts';
export { isSentenceAligned, markSentenceAligned } from './aligned.ts';
export { bytesPerSecond, chunkPcm, durationOf, pcmRms, speakableText } from './tts.ts';
export type { AudioChunk, AudioFormat, SynthesizeOptions, TtsEngine } from './tts.ts';
export { FliteTts } from './flite.ts';
export type { FliteTtsOptions } from './flite.ts';
export { FLITE_VOICES, compileFlite, fliteWasmPath, parseWav, runFlite } from './flite-wasi.ts';
export type { FliteAudio, FliteVoice } from './flite-wasi.ts';
export { OpenAiSpeechTts, PcmDecoder } from './openai-speech.ts';
export type { OpenAiSpeechOptions } from './openai-speech.ts';
export { acePluginAction, detectFraming, interpretFrame, readAceStream } from './ace-plugin.ts';
export type { AceFrame, AceFraming, AcePluginActionOptions, AcePluginRequest, ReadAceStreamOptions } from './ace-plugin.ts';
export { withOutputRails, resolveRailOptions } from './rails.ts';
export type { OutputRail, OutputRailsOptions, RailIncident, RailVerdict, RailWindow, RailedEvents } from './rails.ts';
export { VoiceHistoryStore, parsePlayed, spokenText } from './history.ts';
export type { HistorySentence, PlayedReport, TurnEndReason, VoiceHistoryEntry, VoiceHistoryStoreOptions, VoiceTurnMark } from './history.ts';
export { VoiceChannel } from './channel.ts';
export type { VoiceChannelOptions } from './channel.ts';
export { AUDIO_FRAME_VERSION, AUDIO_HEADER_BYTES, VoiceSession, decodeAudioFrame, encodeAudioFrame } from './session.ts';
export type { AudioFrame, InterruptResult, PauseResult, ResumeResult } from './session.ts';
export { VOICE_COMMANDS, controlVoiceSession } from './control.ts';
export type { VoiceCommand, VoiceControlResult, VoiceSessionLookup } from './control.ts';
export { isTextPause } from './text-pause.ts';
export { voiceWsRoutes } from './ws-routes.ts';
export type { VoiceWsRoutesOptions } from './ws-routes.ts';
export { sentenceRoutes } from './routes.ts';
export type { SentenceRoutesOptions } from './routes.ts';

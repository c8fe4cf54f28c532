"""Actionable messages for failed quality gates, in the take's language ("zh" or "en")."""

from __future__ import annotations

_MESSAGES: dict[str, dict[str, str]] = {
    "format": {
        "zh": "无法读取这个文件（{detail}）。请用 WAV、FLAC、OGG 或 MP3 格式重新录一次",
        "en": "This file cannot be read ({detail}). Please record again as WAV, FLAC, OGG or MP3",
    },
    "size": {
        "zh": "文件太大：{value} 字节，最多 {threshold} 字节。请分段录音，每段只录一句或一段",
        "en": "The file is too large: {value} bytes, at most {threshold}. Please record in shorter parts",
    },
    "channels": {
        "zh": "声道太多：{value} 个，最多 {threshold} 个。请用单声道或立体声录音",
        "en": "Too many channels: {value}, at most {threshold}. Please record in mono or stereo",
    },
    "sample_rate": {
        "zh": "采样率太低：{value} Hz，至少需要 {threshold} Hz。请在录音设置里选择 16000 Hz 或更高",
        "en": "The sample rate is too low: {value} Hz, at least {threshold} Hz is needed. "
        "Please choose 16000 Hz or more in your recorder's settings",
    },
    "duration_short": {
        "zh": "太短了：只有 {value:.1f} 秒，至少需要 {threshold:.1f} 秒。请把整句话读完再停止录音",
        "en": "Too short: {value:.1f} s, at least {threshold:.1f} s is needed. "
        "Please read the whole sentence before you stop recording",
    },
    "duration_long": {
        "zh": "太长了：{value:.0f} 秒，最多 {threshold:.0f} 秒。请分段录音",
        "en": "Too long: {value:.0f} s, at most {threshold:.0f} s. Please record in shorter parts",
    },
    "clipping": {
        "zh": "声音爆音了：{value:.2%} 的采样被削顶，最多允许 {threshold:.2%}。"
        "请离麦克风远一点或调低输入音量再录一次",
        "en": "The sound is clipped: {value:.2%} of the samples hit full scale, at most {threshold:.2%}. "
        "Please move back from the microphone or lower the input volume and record again",
    },
    "loudness": {
        "zh": "声音太小：响度 {value:.0f} LUFS，至少需要 {threshold:.0f} LUFS。请靠近麦克风或调高输入音量再录一次",
        "en": "Too quiet: loudness {value:.0f} LUFS, at least {threshold:.0f} LUFS is needed. "
        "Please move closer to the microphone or raise the input volume and record again",
    },
    "noise_floor": {
        "zh": "背景噪声太大：噪声底 {value:.0f} dBFS，最多 {threshold:.0f} dBFS。请关掉风扇、空调等声源再录一次",
        "en": "The background is too loud: noise floor {value:.0f} dBFS, at most {threshold:.0f} dBFS. "
        "Please switch off fans or air conditioning and record again",
    },
    "snr": {
        "zh": "太吵了：信噪比 {value:.0f} dB，至少需要 {threshold:.0f} dB。请换到更安静的房间再录一次",
        "en": "Too noisy: signal-to-noise ratio {value:.0f} dB, at least {threshold:.0f} dB is needed. "
        "Please move to a quieter room and record again",
    },
    "snr_unmeasured": {
        "zh": "无法估计背景噪声：录音里没有安静的停顿。请在开口前和说完后各留半秒安静",
        "en": "The background noise cannot be measured: the take has no quiet pause. "
        "Please leave half a second of silence before and after you speak",
    },
    "speech_ratio": {
        "zh": "几乎没有听到说话声：语音只占 {value:.0%}，至少需要 {threshold:.0%}。"
        "请检查麦克风，并朗读屏幕上的句子（不要播放音乐）",
        "en": "Almost no speech was heard: speech is {value:.0%} of the take, at least {threshold:.0%} is needed. "
        "Please check your microphone and read the sentence aloud (no music)",
    },
    "leading_silence": {
        "zh": "开头的静音太长：{value:.1f} 秒，最多 {threshold:.1f} 秒。请开始录音后尽快朗读",
        "en": "The silence at the start is too long: {value:.1f} s, at most {threshold:.1f} s. "
        "Please start reading soon after you press record",
    },
    "trailing_silence": {
        "zh": "结尾的静音太长：{value:.1f} 秒，最多 {threshold:.1f} 秒。读完后请及时停止录音",
        "en": "The silence at the end is too long: {value:.1f} s, at most {threshold:.1f} s. "
        "Please stop recording when you have finished reading",
    },
    "inner_silence": {
        "zh": "中间停顿太长：{value:.1f} 秒，最多 {threshold:.1f} 秒。请连贯地把句子读完",
        "en": "A pause in the middle is too long: {value:.1f} s, at most {threshold:.1f} s. "
        "Please read the sentence without long breaks",
    },
    "words": {
        "zh": "读的内容和句子不一致：字错误率 {value:.0%}，最多 {threshold:.0%}。请照着屏幕上的句子逐字朗读",
        "en": "The words do not match the sentence: error rate {value:.0%}, at most {threshold:.0%}. "
        "Please read exactly the sentence on the screen",
    },
    "consent_speaker": {
        "zh": "同意声明的声音和录音不是同一个人：相似度 {value:.2f}，至少需要 {threshold:.2f}。"
        "请由录制朗读句子的本人亲自朗读同意声明",
        "en": "The consent statement and the takes are not the same speaker: similarity {value:.2f}, "
        "at least {threshold:.2f}. The person who read the sentences must read the consent statement",
    },
    "other_speaker": {
        "zh": "这段录音和这个声音录入时不是同一个人：相似度 {value:.2f}，至少需要 {threshold:.2f}。"
        "只能由录入这个声音的本人来录新的风格和样本",
        "en": "This recording is not the speaker this voice was enrolled with: similarity {value:.2f}, "
        "at least {threshold:.2f}. Only the person who enrolled this voice may add styles or samples to it",
    },
    "several_speakers": {
        "zh": "录音里有不止一个人的声音：{count} 段（{takes}）和其他录音不像同一个人（相似度 {value:.2f}，"
        "至少需要 {threshold:.2f}）。只能录入你自己的声音，请重新录这些句子",
        "en": "The takes hold more than one voice: {count} ({takes}) do not match the others (similarity "
        "{value:.2f}, at least {threshold:.2f}). Only your own voice may be enrolled; record them again",
    },
}


def gate_message(key: str, language: str, **values: object) -> str:
    """The message for gate ``key`` ("snr", "duration_short", ...) with its value and threshold filled in."""
    lang = "en" if language == "en" else "zh"
    return _MESSAGES[key][lang].format(**values)


def message_keys() -> frozenset[str]:
    return frozenset(_MESSAGES)

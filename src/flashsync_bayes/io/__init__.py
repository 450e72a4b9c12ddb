"""The lowest floor of file work: the ffmpeg binary, video reading and writing, atomic files.

Nothing here knows about flashes, profiles or the time model; every other module may import it.
"""
